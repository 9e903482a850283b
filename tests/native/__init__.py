"""``dbrestore.native``: PostgreSQL native dumps through psql and pg_restore."""
