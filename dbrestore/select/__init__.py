"""Undelete: chosen rows of a backup, what they need and what belongs to them, upserted into the
live database (``restore_backup --select LABEL:LOOKUP``)."""
