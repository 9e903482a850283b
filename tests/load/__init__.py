"""``dbrestore.load``: writing a table (the ORM path's direct INSERT, COPY, custom fields, rows
converted in forked processes, indexes after the load)."""
