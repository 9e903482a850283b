"""Tests of dbrestore.select: undelete (restore_backup --select, the admin's Restore objects page)."""
