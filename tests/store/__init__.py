"""Tests of the store: repository and migrations, on SQLite and a real throwaway PostgreSQL."""
