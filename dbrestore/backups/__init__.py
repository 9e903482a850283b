"""Backups: the writer (``create_backup``), the catalog of backups, the safety backup and rollback."""
