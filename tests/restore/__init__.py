"""Whole restores and their guarantees: every row accounted for, all or nothing, modes, bad input,
faults with real processes, the loaddata differential test."""
