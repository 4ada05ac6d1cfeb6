"""Cluster mode: several hoga servers on one PostgreSQL and one NATS (docs/scaling.md)."""
