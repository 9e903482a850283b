"""``dbrestore.chunked``: ``--no-atomic`` chunks, checkpoints and ``--resume``, ``--jobs``, ``--distribute``."""
