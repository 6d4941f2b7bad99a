"""Routing: pure decisions over a snapshot of agent state. No I/O in this package."""
