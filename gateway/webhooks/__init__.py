"""Signed webhook delivery (Standard Webhooks) from the durable event log."""
