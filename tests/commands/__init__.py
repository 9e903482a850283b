"""The management commands as a person uses them: ``restore_backup`` end to end, the terminal
(question, phases, bars, verbosity, ``--help``), ``restore_status``, the demo's ``restore_benchmark``."""
