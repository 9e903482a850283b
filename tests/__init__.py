"""The test suite. Each folder mirrors a package of ``dbrestore/`` (see docs/development.md)."""
