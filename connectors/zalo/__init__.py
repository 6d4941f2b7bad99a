"""Zalo Official Account connector."""
