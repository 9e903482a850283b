"""The admin's Restore form: a backup from BACKUP_DIR or an upload, and the options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django import forms
from django.template.defaultfilters import filesizeformat
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from dbrestore import conf
from dbrestore.backups.catalog import human_size, list_backups, resolve_source, upload_location
from dbrestore.conf import split_commas
from dbrestore.exceptions import BackupNotFoundError, DbRestoreError
from dbrestore.files.storage import Location
from dbrestore.options import MODES

MODE_HELP = {
    "auto": _("merge for a Django dumpdata fixture (what loaddata does), replace for any other backup"),
    "replace": _("empty the restored tables first, then load the backup (a safety backup is taken first)"),
    "merge": _("insert new rows and update existing ones by primary key; nothing is deleted"),
    "append": _("insert new rows only; rows already there stay, and conflicts count as skipped"),
}
MODE_CHOICES = [(mode, format_lazy("{}: {}", mode, MODE_HELP[mode])) for mode in MODES]


def backup_choices():
    choices = [("", _("— choose a backup —"))]
    try:
        backups = list_backups()
    except DbRestoreError as exc:  # the storage is down or denied: the page still shows, with the reason
        return [("", f"— {exc} —")]
    for info in backups:
        details = [info.created.strftime("%Y-%m-%d %H:%M UTC"), human_size(info.size)]
        if info.tables is not None:
            details.append(f"{info.tables} tables")
        if info.rows is not None:
            details.append(f"{info.rows} rows")
        choices.append((info.name, f"{info.name} ({', '.join(details)})"))
    return choices


def _split(value: str) -> list[str]:
    return split_commas([value.replace("\n", ",")])


@dataclass
class FormRow:
    """One field laid out as the admin's fieldsets lay it out (a checkbox before its label)."""

    field: forms.BoundField

    @property
    def is_checkbox(self) -> bool:
        return isinstance(self.field.field.widget, forms.CheckboxInput)

    def label_tag(self) -> str:
        if self.is_checkbox:  # as the admin's: after the box, without a colon
            return self.field.label_tag(attrs={"class": "vCheckboxLabel"}, label_suffix="")
        return self.field.label_tag()


class LaidOutForm(forms.Form):
    """A form shown in the admin's aligned fieldsets (``admin/dbrestore/fieldsets.html``)."""

    #: The fieldsets of the page, as a ModelAdmin declares them: (title, field names).
    fieldsets: list[tuple[Any, list[str]]] = []

    def laid_out(self) -> list[tuple[str, list[FormRow]]]:
        """The fieldsets with their bound fields, for the template."""
        return [(str(title), [FormRow(self[name]) for name in names]) for title, names in self.fieldsets]


class RestoreForm(LaidOutForm):
    fieldsets = [
        (_("Backup"), ["backup", "upload"]),
        (_("What to restore"), ["mode", "only", "exclude"]),
        (_("How"), ["atomic", "distribute", "batch_size"]),
    ]

    backup = forms.ChoiceField(
        label=_("Backup"),
        required=False,
        choices=backup_choices,
        help_text=_("A backup in the backup directory (or the configured storage), newest first."),
    )
    upload = forms.FileField(
        label=_("…or upload one"),
        required=False,
        help_text=_("A backup file from this computer: JSON, JSON Lines or a dumpdata fixture (maybe compressed)."),
    )
    mode = forms.ChoiceField(
        label=_("Mode"),
        choices=MODE_CHOICES,
        initial="auto",
        widget=forms.RadioSelect(attrs={"class": "dbrestore-mode-choices radiolist"}),
        help_text=_("What becomes of the rows in the database now: the next pages show it, before anything changes."),
    )
    batch_size = forms.IntegerField(
        label=_("Batch size"),
        min_value=1,
        max_value=100_000,
        required=False,
        help_text=_("Rows per INSERT; empty: DBRESTORE['BATCH_SIZE']."),
    )
    atomic = forms.BooleanField(
        label=_("One transaction (all or nothing)"),
        required=False,
        initial=True,
        help_text=_(
            "On any failure the database is left as it was. Untick to commit chunk by chunk, each with a "
            "checkpoint: an interrupted restore can then be resumed."
        ),
    )
    distribute = forms.BooleanField(
        label=_("Spread over the RQ workers"),
        required=False,
        help_text=_(
            "PostgreSQL, not in one transaction: the chunks go on the queue as jobs, FK level after FK "
            "level, for every rqworker that reaches the database and the backup."
        ),
    )
    only = forms.CharField(
        label=_("Only these tables"), required=False, help_text=_("Model labels or table names, comma-separated.")
    )
    exclude = forms.CharField(
        label=_("Exclude these tables"),
        required=False,
        help_text=_("Model labels or table names, comma-separated: their rows are counted as skipped."),
    )

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload is None:
            return None
        limit = conf.get("MAX_UPLOAD_SIZE")
        if upload.size > limit:
            raise forms.ValidationError(
                _("The file is %(size)s; uploads are limited to %(limit)s.")
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(limit)}
            )
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        if Path(upload.name).suffix.lower() == ".zip":
            raise forms.ValidationError(
                _(
                    "Zip archives are not read: upload the data file itself (.json, .jsonl, optionally .gz, .bz2 or "
                    ".xz), or unpack a backup folder into the backup directory and pick it from the list."
                )
            )
        allowed = {suffix.lower() for suffix in conf.get("UPLOAD_EXTENSIONS")}
        if Path(upload.name).suffix.lower() not in allowed:
            raise forms.ValidationError(
                _("Not an accepted backup file: use one of %(allowed)s.") % {"allowed": ", ".join(sorted(allowed))}
            )
        return upload

    def clean(self):
        data = super().clean()
        if data.get("distribute") and data.get("atomic"):
            raise forms.ValidationError(
                _("Spreading over the RQ workers commits chunk by chunk: untick “One transaction”.")
            )
        if not data.get("backup") and not data.get("upload"):
            raise forms.ValidationError(_("Choose a backup or upload one."))
        if data.get("backup") and data.get("upload"):
            raise forms.ValidationError(_("Choose a backup or upload one, not both."))
        return data

    def source_path(self) -> Location:
        """The backup to restore: the chosen name resolved inside BACKUP_DIR (or the configured
        storage), or the uploaded file saved there (in a folder of its own; the file, not the
        folder, is the backup)."""
        upload = self.cleaned_data.get("upload")
        if upload is None:
            return resolve_source(self.cleaned_data["backup"], paths=False)
        path = upload_location(upload.name)
        with path.open("wb") as stream:
            for chunk in upload.chunks():
                stream.write(chunk)
        return path

    def restore_options(self) -> dict[str, Any]:
        return _restore_options(self.cleaned_data)


def _restore_options(data: dict[str, Any]) -> dict[str, Any]:
    """The restore options a form's cleaned ``data`` gives (the restore form's and the confirmation's)."""
    return {
        "mode": data["mode"],
        "batch_size": data.get("batch_size") or None,
        "atomic": bool(data.get("atomic")),
        "distribute": bool(data.get("distribute")),
        "only": _split(data.get("only") or ""),
        "exclude": _split(data.get("exclude") or ""),
    }


class ConfirmForm(forms.Form):
    """The confirmation step: which backup (by name, checked again) and the options, hidden."""

    backup = forms.CharField(widget=forms.HiddenInput)
    mode = forms.ChoiceField(choices=[(m, m) for m in MODES], widget=forms.HiddenInput)
    batch_size = forms.IntegerField(min_value=1, max_value=100_000, required=False, widget=forms.HiddenInput)
    atomic = forms.BooleanField(required=False, widget=forms.HiddenInput)
    distribute = forms.BooleanField(required=False, widget=forms.HiddenInput)
    only = forms.CharField(required=False, widget=forms.HiddenInput)
    exclude = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_backup(self):
        try:
            self.path = resolve_source(self.cleaned_data["backup"], paths=False)
        except BackupNotFoundError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return self.cleaned_data["backup"]

    def restore_options(self) -> dict[str, Any]:
        return _restore_options(self.cleaned_data)


__all__ = ["RestoreForm", "ConfirmForm", "BackupNotFoundError"]
