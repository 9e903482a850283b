"""Undelete: chosen rows of a backup, what they need and what belongs to them, upserted into the
live database (``restore_backup --select LABEL:LOOKUP``). Rows are compared with the database's
as the diff compares them (:func:`dbrestore.compare.report.same`)."""
