"""Whether a restore may go on: asked by the load loop, never raised by a progress listener.

The load loop (``load.atomic``, ``load.table``, ``chunked.loop``, ``native.restore``) asks between
batches and as each table starts; the answer comes from the run's RestoreRun row (a cancel
request), its RQ job (deleted from the dashboard) and its database lock (lost).
"""

from __future__ import annotations

import threading
import time

from dbrestore.exceptions import RestoreCancelled
from dbrestore.runs import queue
from dbrestore.runs.lifecycle import RunRecorder


class RunWatch:
    """Whether a run may go on, asked by the load loop between batches (and as each table or
    dump table starts): a reason to stop for a cancel request or its RQ job deleted
    (``job_id``), None to go on; a lost database lock raises :class:`LockLostError`.

    Asked at most every ``interval`` seconds (the recorder's) unless ``force``: the same pace
    as the progress writes, so a cancel is seen within one of them.
    """

    def __init__(self, recorder: RunRecorder, *, job_id: str | None = None):
        self.recorder = recorder
        self.job_id = job_id
        self.interval = recorder.interval
        self._last = float("-inf")
        self._lock = threading.Lock()  # tables loading side by side (--jobs) ask from several threads

    def __call__(self, force: bool = False) -> str | None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return None
            self._last = now
            run = self.recorder.run
            if self.recorder.lock is not None:
                self.recorder.lock.check()
            if self.recorder.cancel_requested():
                return f"restore #{run.pk} was cancelled"
            if self.job_id and not queue.job_exists(self.job_id):
                return f"restore #{run.pk} stopped: its RQ job {self.job_id} was deleted"
            return None

    def check(self, force: bool = False) -> None:
        """Raise :class:`RestoreCancelled` when the run should stop."""
        reason = self(force)
        if reason:
            raise RestoreCancelled(reason)
