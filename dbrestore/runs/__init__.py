"""RestoreRun and everything written about it: its lifecycle (created, running, finished, reaped),
live progress, the report both UIs render, the one-restore-per-database lock and the RQ queue."""
