"""RestoreRun: one row per restore, its live progress and its history."""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext_lazy as _

from dbrestore.runs import report
from dbrestore.runs.storable import StorableMixin, storable_fields

#: Each per-table count of ``RestoreRun.tables`` and the column that holds its sum over the tables.
TOTAL_FIELDS = {
    "total": "rows_processed",
    "inserted": "rows_inserted",
    "skipped": "rows_skipped",
    "rejected": "rows_rejected",
}


def table_totals(tables: dict[str, Any]) -> dict[str, int]:
    """The run's row counts, summed from its per-table entries. ``RestoreRun.tables`` is the one
    store of counts; the ``rows_*`` columns hold these sums (for the changelist's columns and
    sorting) and are only ever written from them."""
    return {
        column: sum(int(entry.get(count) or 0) for entry in tables.values()) for count, column in TOTAL_FIELDS.items()
    }


class StorableQuerySet(models.QuerySet["RestoreRun"]):
    """``update()`` with the values made storable (:mod:`dbrestore.runs.storable`), as ``save()`` makes them."""

    def update(self, **kwargs: Any) -> int:
        return super().update(**storable_fields(self.model, kwargs))


class RestoreRun(StorableMixin, models.Model):
    class Status(models.TextChoices):
        QUEUED = report.QUEUED, _("Queued")
        RUNNING = report.RUNNING, _("Running")
        SUCCEEDED = report.SUCCEEDED, _("Succeeded")
        PARTIAL = report.PARTIAL, _("Partial")
        FAILED = report.FAILED, _("Failed")
        CANCELLED = report.CANCELLED, _("Cancelled")

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.PARTIAL, Status.FAILED, Status.CANCELLED)

    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(_("source"), max_length=1024, help_text=_("Path of the backup restored."))
    source_format = models.CharField(_("format"), max_length=32, blank=True)
    database = models.CharField(_("database"), max_length=100, default="default")
    mode = models.CharField(_("mode"), max_length=16, default="replace")
    options = models.JSONField(_("options"), default=dict, blank=True)
    requested_by = models.CharField(_("requested by"), max_length=150, blank=True)
    job_id = models.CharField(_("RQ job id"), max_length=64, blank=True)

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("heartbeat"), null=True, blank=True)
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)

    current_table = models.CharField(_("current table"), max_length=255, blank=True)
    tables = models.JSONField(
        _("tables"),
        default=dict,
        blank=True,
        help_text=_("Per-table progress: {label: {total, processed, inserted, skipped, rejected, seconds}}."),
    )
    rows_total = models.BigIntegerField(_("rows total"), default=0)
    rows_processed = models.BigIntegerField(_("rows processed"), default=0)
    rows_inserted = models.BigIntegerField(_("rows inserted"), default=0)
    rows_skipped = models.BigIntegerField(_("rows skipped"), default=0)
    rows_rejected = models.BigIntegerField(_("rows rejected"), default=0)

    warnings = models.JSONField(_("warnings"), default=list, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    verification = models.JSONField(_("verification"), default=dict, blank=True)
    safety_backup = models.CharField(_("safety backup"), max_length=1024, blank=True)
    rejects_file = models.CharField(_("rejects file"), max_length=1024, blank=True)
    #: A chunked (``--no-atomic``) restore: whether it is prepared (checks, safety backup,
    #: emptying done), the backup's fingerprint and the target, for ``--resume``.
    checkpoint = models.JSONField(_("checkpoint"), default=dict, blank=True)

    objects = StorableQuerySet.as_manager()

    class Meta:
        verbose_name = _("restore run")
        verbose_name_plural = _("restore runs")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "database"], name="dbrestore_status_db_idx")]
        permissions = [("run_restore", _("Can run a restore"))]

    def __str__(self) -> str:
        return f"Restore #{self.pk} ({self.get_status_display()}) of {self.source}"

    def set_tables(self, tables: dict[str, Any]) -> None:
        """Record the per-table entries and the totals summed from them (the caller saves)."""
        self.tables = tables
        for column, value in table_totals(tables).items():
            setattr(self, column, value)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration_s(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()

    @property
    def rows_per_s(self) -> float | None:
        duration = self.duration_s
        if not duration:
            return None
        return self.rows_processed / duration

    @property
    def percent(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 100.0
        if not self.rows_total:
            return 0.0
        return min(100.0, 100.0 * self.rows_processed / self.rows_total)


class RestoreChunk(StorableMixin, models.Model):
    """The checkpoint of one chunk of a ``--no-atomic`` restore (see :mod:`dbrestore.chunked.restore`).

    Written in the RESTORE database (not the run history's), in the same transaction as the
    chunk's rows: a chunk is ``done`` exactly when its rows are committed, so a resume neither
    loads it twice nor counts it twice. ``run_id`` is the RestoreRun's id (no foreign key: the
    history may live in another database).
    """

    PLANNED, DONE = "planned", "done"

    run_id = models.BigIntegerField(_("restore run"), db_index=True)
    table = models.CharField(_("model"), max_length=255)
    index = models.IntegerField(_("chunk"))
    level = models.IntegerField(_("FK level"), default=0)
    position = models.IntegerField(_("order"), default=0)
    start = models.BigIntegerField(_("first byte"), default=0)
    end = models.BigIntegerField(_("end byte"), null=True, blank=True)
    first_line = models.BigIntegerField(_("first line"), default=1)
    state = models.CharField(_("state"), max_length=16, default=PLANNED)
    total = models.BigIntegerField(default=0)
    inserted = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    #: What the post-load steps need from the chunk: drift (unknown and missing columns, values
    #: dropped) and the natural keys to fill in once every table is loaded.
    details = models.JSONField(_("details"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("restore chunk")
        verbose_name_plural = _("restore chunks")
        ordering = ["run_id", "position"]
        constraints = [models.UniqueConstraint(fields=["run_id", "table", "index"], name="dbrestore_chunk_unique")]

    def __str__(self) -> str:
        return f"Restore #{self.run_id} {self.table} chunk {self.index} ({self.state})"
