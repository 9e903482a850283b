"""``dbrestore.plan``: tables mapped to models and ordered; the admin's preview of a restore."""
