"""Which models a backup restores, in which order; what a restore will do before its first row."""
