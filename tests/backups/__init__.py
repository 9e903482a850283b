"""``dbrestore.backups``: create_backup, the catalog of backups, safety backups and rollback."""
