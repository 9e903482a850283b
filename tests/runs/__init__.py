"""``dbrestore.runs`` and ``dbrestore.jobs``: the run record, background restores through RQ."""
