"""The admin's custom views: Restore (choose), confirm (a dry run's findings, then start),
compare (the diff with the database, then the same confirmation), live progress (a page and
its JSON) and cancel. Each checks its permission itself; the ones that change state take POST
only. The work is done by the service layer (engine, preview, compare)."""

from __future__ import annotations

import shutil

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dbrestore import conf
from dbrestore.admin.dashboard import can_use_dashboard
from dbrestore.admin.display import rolled_back, rows_now
from dbrestore.admin.forms import ConfirmForm, RestoreForm
from dbrestore.backups.catalog import backup_name, backup_root
from dbrestore.compare import compare
from dbrestore.exceptions import DbRestoreError
from dbrestore.files.storage import StoragePath
from dbrestore.jobs import cancel_restore, queue_restore, queue_resume
from dbrestore.models import RestoreRun
from dbrestore.plan.preview import preview_restore
from dbrestore.runs.lifecycle import progress_data, settle


def admin_context(model_admin, request: HttpRequest, **extra):
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "app_label": model_admin.opts.app_label,
        **extra,
    }


def require_restore(model_admin, request: HttpRequest) -> None:
    if not model_admin.has_restore_permission(request):
        raise PermissionDenied


def _require_view(model_admin, request: HttpRequest) -> None:
    if not (model_admin.has_view_permission(request) or model_admin.has_restore_permission(request)):
        raise PermissionDenied


def rq_job_url(run: RestoreRun, request: HttpRequest) -> str | None:
    """The job's page in the RQ dashboard, when it went through RQ and the user may open it."""
    if not run.job_id or conf.get("SYNC_JOBS") or not can_use_dashboard(request.user):
        return None
    from django_rq.settings import get_queues_list

    names = [queue["name"] for queue in get_queues_list()]
    if conf.get("QUEUE") not in names:
        return None
    try:
        return reverse("django_rq:job_detail", args=[names.index(conf.get("QUEUE")), run.job_id])
    except NoReverseMatch:
        return None


def _backup_root_text() -> str:
    try:
        return str(backup_root())
    except DbRestoreError as exc:
        return str(exc)


def discard_upload(source) -> None:
    """Delete an upload's folder (``upload-<stamp>/``, which holds only the uploaded file)."""
    folder = source.parent
    if isinstance(folder, StoragePath):
        for item in folder.iterdir():
            item.storage.delete(item.key)
    else:
        shutil.rmtree(folder, ignore_errors=True)


def restore_view(model_admin):
    def view(request: HttpRequest) -> HttpResponse:
        require_restore(model_admin, request)
        form = RestoreForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            source = None
            try:
                source = form.source_path()
                options = form.restore_options()
                preview = preview_restore(source, **options)
            except DbRestoreError as exc:
                form.add_error(None, str(exc))
                if source is not None and form.cleaned_data.get("upload"):
                    discard_upload(source)  # an unusable upload is not kept
            else:
                confirm = ConfirmForm(
                    initial={
                        **options,
                        "backup": backup_name(source),
                        "only": ",".join(options["only"]),
                        "exclude": ",".join(options["exclude"]),
                    }
                )
                return TemplateResponse(
                    request,
                    "admin/dbrestore/confirm.html",
                    admin_context(
                        model_admin,
                        request,
                        title="Confirm the restore",
                        preview=preview,
                        form=confirm,
                        options=options,
                    ),
                )
        return TemplateResponse(
            request,
            "admin/dbrestore/restore.html",
            admin_context(
                model_admin,
                request,
                title="Restore a backup",
                form=form,
                backup_dir=_backup_root_text(),
                max_upload=conf.get("MAX_UPLOAD_SIZE"),
            ),
        )

    return view


def compare_view(model_admin):
    """ "Compare with the database": the backup and the options of the confirmation step (a GET:
    it reads only), the diff per table with its samples, then the same confirmation."""

    @never_cache
    def view(request: HttpRequest) -> HttpResponse:
        require_restore(model_admin, request)
        form = ConfirmForm(request.GET)
        if not form.is_valid():
            messages.error(
                request,
                "The backup could not be compared: "
                + "; ".join(str(message) for errors in form.errors.values() for message in errors),
            )
            return redirect("admin:dbrestore_restorerun_restore")
        try:
            report = compare(form.path, **form.restore_options())
        except DbRestoreError as exc:
            messages.error(request, str(exc))
            return redirect("admin:dbrestore_restorerun_restore")
        return TemplateResponse(
            request,
            "admin/dbrestore/compare.html",
            admin_context(
                model_admin,
                request,
                title="Compare the backup with the database",
                report=report,
                tables=list(report.tables.values()),
                form=form,
            ),
        )

    return view


def confirm_view(model_admin):
    @require_POST
    def view(request: HttpRequest) -> HttpResponse:
        require_restore(model_admin, request)
        form = ConfirmForm(request.POST)
        if not form.is_valid():
            messages.error(
                request,
                "The restore could not start: "
                + "; ".join(str(message) for errors in form.errors.values() for message in errors),
            )
            return redirect("admin:dbrestore_restorerun_restore")
        try:
            run = queue_restore(form.path, requested_by=request.user.get_username(), **form.restore_options())
        except DbRestoreError as exc:
            messages.error(request, str(exc))
            return redirect("admin:dbrestore_restorerun_restore")
        model_admin.log_addition(request, run, f"Started restore #{run.pk} of {run.source} ({run.mode})")
        messages.success(request, f"Restore #{run.pk} of {form.cleaned_data['backup']} started.")
        return redirect("admin:dbrestore_restorerun_progress_page", pk=run.pk)

    return view


def _run_view(require, decorator):
    """A view of one RestoreRun (``<int:pk>/...``): the permission checked by ``require``, the
    run fetched (404 when there is none), then ``handle(model_admin, request, run)``."""

    def wrap(handle):
        def factory(model_admin):
            @decorator
            def view(request: HttpRequest, pk: int) -> HttpResponse:
                require(model_admin, request)
                return handle(model_admin, request, get_object_or_404(RestoreRun, pk=pk))

            return view

        return factory

    return wrap


@_run_view(_require_view, never_cache)
def progress_page(model_admin, request: HttpRequest, run: RestoreRun) -> HttpResponse:
    return TemplateResponse(
        request,
        "admin/dbrestore/progress.html",
        admin_context(
            model_admin,
            request,
            title=f"Restore #{run.pk}",
            run=run,
            progress_url=reverse("admin:dbrestore_restorerun_progress", args=[run.pk]),
            cancel_url=reverse("admin:dbrestore_restorerun_cancel", args=[run.pk]),
            can_cancel=model_admin.has_restore_permission(request),
            rq_job_url=rq_job_url(run, request),
            run_url=reverse("admin:dbrestore_restorerun_change", args=[run.pk]),
        ),
    )


@_run_view(_require_view, never_cache)
def progress_json(model_admin, request: HttpRequest, run: RestoreRun) -> HttpResponse:
    data = progress_data(run)
    run.refresh_from_db()
    data["rolled_back"] = rolled_back(run)
    data["rows_now"] = rows_now(run) if data["final"] else {}  # asked once: polling stops at a final status
    return JsonResponse(data)


@_run_view(require_restore, require_POST)
def cancel_view(model_admin, request: HttpRequest, run: RestoreRun) -> HttpResponse:
    outcome = cancel_restore(run)
    if outcome == "cancelled":
        messages.success(request, f"Restore #{run.pk} was cancelled before it started.")
    elif outcome == "stopping":
        messages.warning(request, f"Restore #{run.pk} will stop at its next batch (rolled back when atomic).")
    else:
        messages.info(request, f"Restore #{run.pk} had already ended ({outcome}).")
    model_admin.log_change(request, run, f"Cancel requested: {outcome}")
    return redirect("admin:dbrestore_restorerun_progress_page", pk=run.pk)


@_run_view(require_restore, require_POST)
def resume_view(model_admin, request: HttpRequest, run: RestoreRun) -> HttpResponse:
    """The Resume button of a failed, cancelled or dead ``--no-atomic`` run: queued as an RQ job."""
    try:
        queue_resume(run, requested_by=request.user.get_username())
    except DbRestoreError as exc:
        messages.error(request, str(exc))
        return redirect("admin:dbrestore_restorerun_change", run.pk)
    model_admin.log_change(request, run, f"Resume of restore #{run.pk} queued")
    messages.success(request, f"Restore #{run.pk} resumes: its finished chunks are kept.")
    return redirect("admin:dbrestore_restorerun_progress_page", pk=run.pk)


@_run_view(require_restore, require_POST)
def settle_view(model_admin, request: HttpRequest, run: RestoreRun) -> HttpResponse:
    """The run page's "Mark failed if dead" button: the runs of the run's database that nobody is
    behind any more are failed (never a live one: it holds the database's lock)."""
    if run.is_active:
        settle(run.database)
        run.refresh_from_db()
    if run.is_active:
        messages.info(request, f"Restore #{run.pk} is alive ({run.status}): nothing was changed.")
    else:
        messages.warning(request, f"Restore #{run.pk} is {run.status}.")
        model_admin.log_change(request, run, f"Marked {run.status}: nobody was behind it any more")
    return redirect("admin:dbrestore_restorerun_change", run.pk)
