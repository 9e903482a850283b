"""Signals a project can hook: ``pre_restore`` before the first write, ``post_restore`` after.

Both send ``sender=RestoreRun``, ``run`` (the RestoreRun) and ``tables`` (model labels).
``post_restore`` also sends ``result`` (the RestoreResult).
"""

from django.dispatch import Signal

pre_restore = Signal()
post_restore = Signal()
