"""RestoreRun in the admin: the read-only history, and the Restore / progress / cancel views."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import admin_views
from .models import RestoreRun
from .runs import settle

STATUS_COLOURS = {
    "queued": "#777", "running": "#2a6ebb", "succeeded": "#2e7d32", "partial": "#c77700",
    "failed": "#c62828", "cancelled": "#555",
}


@admin.register(RestoreRun)
class RestoreRunAdmin(admin.ModelAdmin):
    list_display = ["id", "status_badge", "source", "requested_by", "started_at", "duration", "rows", "speed"]
    list_display_links = ["id", "source"]
    list_filter = ["status", "database", "mode"]
    search_fields = ["source", "requested_by"]
    date_hierarchy = "created_at"
    change_list_template = "admin/dbrestore/restorerun/change_list.html"
    change_form_template = "admin/dbrestore/restorerun/change_form.html"
    fieldsets = [
        (None, {"fields": ["status", "source", "source_format", "database", "mode", "requested_by", "options"]}),
        (_("Timing"), {"fields": ["created_at", "started_at", "finished_at", "heartbeat_at"]}),
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
            '<span class="dbrestore-badge" style="background:{}">{}</span>',
            STATUS_COLOURS.get(run.status, "#777"), run.get_status_display(),
        )

    @admin.display(description=_("duration"))
    def duration(self, run: RestoreRun):
        seconds = run.duration_s
        return "—" if seconds is None else f"{seconds:.1f} s"

    @admin.display(description=_("rows restored / total"))
    def rows(self, run: RestoreRun):
        total = run.rows_total or run.rows_processed
        return f"{run.rows_inserted} / {total}"

    @admin.display(description=_("rows/s"))
    def speed(self, run: RestoreRun):
        speed = run.rows_per_s
        return "—" if speed is None else f"{speed:,.0f}"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path("restore/", wrap(admin_views.restore_view(self)), name="%s_%s_restore" % info),
            path("restore/confirm/", wrap(admin_views.confirm_view(self)), name="%s_%s_confirm" % info),
            path("<int:pk>/progress/", wrap(admin_views.progress_page(self)), name="%s_%s_progress_page" % info),
            path("<int:pk>/progress.json", wrap(admin_views.progress_json(self)), name="%s_%s_progress" % info),
            path("<int:pk>/cancel/", wrap(admin_views.cancel_view(self)), name="%s_%s_cancel" % info),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "has_restore_permission": self.has_restore_permission(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        if run is not None and run.is_active:
            settle(run.database)  # a run whose process died shows failed, not running
            run.refresh_from_db()
        tables = sorted((run.tables or {}).items(), key=lambda item: item[1].get("position", 0)) if run else []
        extra_context = {
            **(extra_context or {}),
            "run": run,
            "tables": tables,
            "left_holding": any("rows_now" in table for _, table in tables),
            "progress_url": reverse("admin:dbrestore_restorerun_progress_page", args=[object_id]) if run else None,
            "rq_job_url": admin_views.rq_job_url(run) if run else None,
        }
        return super().change_view(request, object_id, form_url, extra_context)
