"""Plain support code for the tests: data builders, readers and helpers. No tests and no fixtures
(fixtures live in the ``conftest.py`` files)."""
