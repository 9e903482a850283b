"""``dbrestore.convert``: backup values -> field values as Django stores them; what a column cannot
hold, or a natural key that names nothing, is a counted reject."""
