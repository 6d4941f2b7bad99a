"""The PostgreSQL backend (scale-out: any number of gateway processes on one database)."""

from gateway.store.postgres.store import PostgresStore, is_postgres_url, run_migrations

__all__ = ["PostgresStore", "is_postgres_url", "run_migrations"]
