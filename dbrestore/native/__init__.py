"""PostgreSQL native dumps: which format a dump is, and its restore through psql / pg_restore."""
