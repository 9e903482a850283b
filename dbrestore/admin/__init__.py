"""RestoreRun in the admin: the read-only history, and the Restore / progress / cancel views."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from dbrestore.admin import views as admin_views
from dbrestore.admin.display import may_resume, rolled_back, table_rows, verification_rows
from dbrestore.admin.undelete import undelete_view
from dbrestore.chunked import aside
from dbrestore.models import RestoreRun
from dbrestore.runs.lifecycle import seems_dead

SOURCE_CHARS = 40  # of a long source path, the history shows the end (the full path is its tooltip)


def with_seconds(value, zone: bool = True) -> str:
    return "—" if value is None else timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S" + (" %Z" if zone else ""))


def option_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


@admin.register(RestoreRun)
class RestoreRunAdmin(admin.ModelAdmin):
    # The numbers before the source: a long path must not push them off screen.
    list_display = ["id", "status_badge", "started", "duration", "rows", "speed", "requested_by", "short_source"]
    list_display_links = ["id", "short_source"]
    list_filter = ["status", "database", "mode"]
    search_fields = ["source", "requested_by"]
    date_hierarchy = "created_at"
    change_list_template = "admin/dbrestore/restorerun/change_list.html"
    change_form_template = "admin/dbrestore/restorerun/change_form.html"
    readonly_fields = ["options_table", "created", "started_with_zone", "finished", "heartbeat", "indexes_set_aside"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "status",
                    "source",
                    "source_format",
                    "database",
                    "mode",
                    "requested_by",
                    "options_table",
                    "indexes_set_aside",
                ]
            },
        ),
        (_("Timing"), {"fields": ["created", "started_with_zone", "finished", "heartbeat"]}),
        (_("Rows"), {"fields": ["rows_total", "rows_processed", "rows_inserted", "rows_skipped", "rows_rejected"]}),
        (_("Files"), {"fields": ["safety_backup", "rejects_file", "job_id"]}),
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_restore_permission(self, request) -> bool:
        return request.user.is_active and request.user.has_perm("dbrestore.run_restore")

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, run: RestoreRun):
        return format_html(
            '<span class="dbrestore-badge status-{}">{}</span>',  # colours: dbrestore.css
            run.status,
            run.get_status_display(),
        )

    @admin.display(description=_("source"), ordering="source")
    def short_source(self, run: RestoreRun):
        source = run.source
        shown = source if len(source) <= SOURCE_CHARS else "…" + source[-(SOURCE_CHARS - 1) :]
        selected = (run.options or {}).get("select")
        if selected:  # an undelete: which rows it brought back
            return format_html(
                '<span class="dbrestore-source" title="{}">{}</span> <span class="dbrestore-selection">{}</span>',
                source,
                shown,
                ", ".join(selected),
            )
        return format_html('<span class="dbrestore-source" title="{}">{}</span>', source, shown)

    @admin.display(description=_("options"))
    def options_table(self, run: RestoreRun):
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            ((key.replace("_", " "), option_value(value)) for key, value in (run.options or {}).items()),
        )
        return format_html('<table class="dbrestore-options">{}</table>', rows) if rows else "—"

    @admin.display(description=_("indexes set aside"))
    def indexes_set_aside(self, run: RestoreRun):
        """A chunked run's indexes and FKs not put back yet (see dbrestore.chunked.aside)."""
        described = aside.describe(run)
        if not described:
            return "—"
        return format_html('<strong class="dbrestore-set-aside">{}</strong>', described)

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, run: RestoreRun):
        return with_seconds(run.created_at)

    @admin.display(description=_("started"), ordering="started_at")
    def started(self, run: RestoreRun):
        return with_seconds(run.started_at, zone=False)

    @admin.display(description=_("started"), ordering="started_at")
    def started_with_zone(self, run: RestoreRun):
        return with_seconds(run.started_at)

    @admin.display(description=_("finished"), ordering="finished_at")
    def finished(self, run: RestoreRun):
        return with_seconds(run.finished_at)

    @admin.display(description=_("heartbeat"))
    def heartbeat(self, run: RestoreRun):
        return with_seconds(run.heartbeat_at)

    @admin.display(description=_("duration"))
    def duration(self, run: RestoreRun):
        seconds = run.duration_s
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description=_("rows in / total"))
    def rows(self, run: RestoreRun):
        total = run.rows_total or run.rows_processed
        if rolled_back(run) and run.rows_inserted:
            return format_html(
                '<span title="rolled back: {} inserted rows undone">0 / {}</span>', run.rows_inserted, total
            )
        return f"{run.rows_inserted} / {total}"

    @admin.display(description=_("rows/s"))
    def speed(self, run: RestoreRun):
        speed = run.rows_per_s
        return "—" if speed is None else f"{speed:,.0f}"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("restore/", wrap(admin_views.restore_view(self)), name=f"{prefix}_restore"),
            path("restore/confirm/", wrap(admin_views.confirm_view(self)), name=f"{prefix}_confirm"),
            path("restore/objects/", wrap(undelete_view(self)), name=f"{prefix}_undelete"),
            path("restore/compare/", wrap(admin_views.compare_view(self)), name=f"{prefix}_compare"),
            path("<int:pk>/progress/", wrap(admin_views.progress_page(self)), name=f"{prefix}_progress_page"),
            path("<int:pk>/progress.json", wrap(admin_views.progress_json(self)), name=f"{prefix}_progress"),
            path("<int:pk>/cancel/", wrap(admin_views.cancel_view(self)), name=f"{prefix}_cancel"),
            path("<int:pk>/resume/", wrap(admin_views.resume_view(self)), name=f"{prefix}_resume"),
            path("<int:pk>/settle/", wrap(admin_views.settle_view(self)), name=f"{prefix}_settle"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "has_restore_permission": self.has_restore_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        may_restore = self.has_restore_permission(request)
        tables = table_rows(run) if run else []
        extra_context = {
            **(extra_context or {}),
            "run": run,
            "tables": tables,
            "left_holding": any("complete" in table for table in tables),
            "rolled_back": rolled_back(run) if run else False,
            "final": run.status in RestoreRun.FINAL_STATUSES if run else False,
            "verification_rows": verification_rows(run) if run else [],
            "progress_url": reverse("admin:dbrestore_restorerun_progress_page", args=[object_id]) if run else None,
            "rq_job_url": admin_views.rq_job_url(run, request) if run else None,
            "resume_url": reverse("admin:dbrestore_restorerun_resume", args=[object_id])
            if run and may_resume(run) and may_restore
            else None,
            "seems_dead": seems_dead(run) if run else None,
            "settle_url": reverse("admin:dbrestore_restorerun_settle", args=[object_id])
            if run and run.is_active and may_restore
            else None,
            "chunked": any("state" in table for table in tables),
        }
        return super().change_view(request, object_id, form_url, extra_context)
