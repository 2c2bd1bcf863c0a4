"""Servers alloop can start for you: a throwaway PostgreSQL, an MLflow tracking server."""
