"""Chunked restores (``--no-atomic``): chunks, checkpoints, resume, ``--jobs`` processes, the RQ fan-out."""
