"""``dbrestore.integrity``: foreign keys checked, deferred and repaired."""
