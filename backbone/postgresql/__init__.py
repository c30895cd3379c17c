"""Django's PostgreSQL backend, with a pool checkout that survives a failover (see base.py)."""
