"""The admin's "Restore objects" page: a backup, a model and a lookup; the preview as a tree (the
selected rows, what belongs to them, what they need, each added, unchanged or conflicting); then
the restore, queued as an RQ job like any other and recorded with its selection."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from dbrestore.admin.forms import LaidOutForm, backup_choices
from dbrestore.admin.views import admin_context, require_restore
from dbrestore.backups.catalog import resolve_source
from dbrestore.exceptions import DbRestoreError
from dbrestore.jobs import queue_restore
from dbrestore.select.apply import SelectionOutcome
from dbrestore.select.lookups import parse_selection
from dbrestore.select.restore import preview_selection


def _model_choices() -> list[tuple[str, Any]]:
    return [("", _("— choose a model —"))] + sorted(
        (model._meta.label, f"{model._meta.label} ({model._meta.verbose_name})")
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
    )


class UndeleteForm(LaidOutForm):
    fieldsets = [(_("Rows to bring back"), ["backup", "model", "lookup"]), (_("How"), ["children", "overwrite"])]

    backup = forms.ChoiceField(label=_("Backup"), choices=backup_choices)
    model = forms.ChoiceField(label=_("Model"), choices=_model_choices)
    lookup = forms.CharField(
        label=_("Rows"),
        help_text=_("FIELD=VALUE or FIELD__in=V1,V2 on a field of the model: pk=42, pk__in=7,8,9, username=ann."),
    )
    children = forms.BooleanField(
        label=_("With what belongs to them"),
        required=False,
        initial=True,
        help_text=_("The rows Django's delete removed with them: CASCADE children, M2M rows, generic relations."),
    )
    overwrite = forms.BooleanField(
        label=_("Overwrite conflicting rows"),
        required=False,
        help_text=_("Replace database rows whose primary key now holds other values with the backup's."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("model") and data.get("lookup"):
            data["selection"] = f"{data['model']}:{data['lookup'].strip()}"
            try:
                parse_selection(data["selection"])
            except DbRestoreError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data

    def restore_options(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "select": [data["selection"]],
            "select_children": data["children"],
            "overwrite": data["overwrite"],
        }


def undelete_view(model_admin):
    def view(request: HttpRequest) -> HttpResponse:
        require_restore(model_admin, request)
        form = UndeleteForm(request.POST or None)
        context: dict[str, Any] = {"form": form}
        if request.method == "POST" and form.is_valid():
            try:
                source = resolve_source(form.cleaned_data["backup"])
                if "confirm" in request.POST:
                    return _start(model_admin, request, source, form)
                outcome = preview_selection(source, **form.restore_options())
            except DbRestoreError as exc:
                form.add_error(None, str(exc))
            else:
                context.update(outcome=outcome, tree=tree(outcome), can_confirm=_may_write(outcome, form))
        return TemplateResponse(
            request,
            "admin/dbrestore/undelete.html",
            admin_context(model_admin, request, title=_("Restore objects from a backup"), **context),
        )

    return view


def _start(model_admin, request: HttpRequest, source, form: UndeleteForm) -> HttpResponse:
    run = queue_restore(source, requested_by=request.user.get_username(), **form.restore_options())
    model_admin.log_addition(request, run, f"Started restore #{run.pk}: {form.cleaned_data['selection']} from {source}")
    messages.success(request, f"Restore #{run.pk} of {form.cleaned_data['selection']} started.")
    return redirect("admin:dbrestore_restorerun_progress_page", pk=run.pk)


def _may_write(outcome: SelectionOutcome, form: UndeleteForm) -> bool:
    return not outcome.conflicts or form.cleaned_data["overwrite"]


def tree(outcome: SelectionOutcome) -> list[dict[str, Any]]:
    """The preview's branches: the selected rows, what belongs to them, what they need; per
    table, the keys added, unchanged and conflicting."""
    branches: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for table in outcome.tables:
        for state, keys in (("added", table.added), ("unchanged", table.unchanged)):
            for pk in keys:
                branches[_branch(table.why.get(pk, ""))][table.label][state].append(pk)
        for pk, why in table.conflicts:
            branches[_branch(table.why.get(pk, ""))][table.label]["conflicts"].append((pk, why))
    order = ("selected", "belongs to them", "needed")
    return [
        {"name": name, "tables": [{"label": label, **states} for label, states in branches[name].items()]}
        for name in order
        if name in branches
    ]


def _branch(why: str) -> str:
    if why == "selected":
        return "selected"
    if why.startswith(("belongs to", "part of")):
        return "belongs to them"
    return "needed"
