"""Alembic migrations; run with `lotse migrate` (and automatically by `lotse serve`)."""
