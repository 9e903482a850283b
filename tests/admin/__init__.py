"""``dbrestore.admin``: permissions, the Restore -> confirm -> progress flow, uploads, the RQ dashboard,
and the whole flow in a real browser."""
