"""``dbrestore.sources``: the input formats and fuzzing the readers."""
