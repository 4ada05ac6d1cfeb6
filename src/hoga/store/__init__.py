"""Persistence: tables, migrations and repositories that always act for a named user."""
