"""The Django storages backups live in: which alias, the storage behind it (with a one-line error
when its extra is missing), and what a storage's faults mean."""

from __future__ import annotations

from typing import Any

from dbrestore import conf
from dbrestore.exceptions import MissingExtraError, RestoreConfigError
from dbrestore.exceptions import describe as describe_error


def configured_alias(override: str | None = None) -> str | None:
    """The storage alias backups live in: ``override`` (``--storage``), else
    ``DBRESTORE["STORAGE"]``; None means the local ``BACKUP_DIR``."""
    from django.conf import settings

    alias = override or conf.get("STORAGE")
    if not alias:
        return None
    if alias not in getattr(settings, "STORAGES", {}):
        known = ", ".join(getattr(settings, "STORAGES", {})) or "none"
        raise RestoreConfigError(f"unknown storage alias {alias!r} (settings.STORAGES has: {known})")
    return alias


def get_storage(alias: str):
    from django.conf import settings
    from django.core.files.storage import InvalidStorageError, storages

    try:
        return storages[alias]
    except InvalidStorageError as exc:
        backend = str(settings.STORAGES.get(alias, {}).get("BACKEND", ""))
        if backend.startswith("storages.") and isinstance(exc.__cause__, ImportError):
            raise MissingExtraError(f"the storage {alias!r} ({backend})", "s3", "django-storages and boto3") from None
        raise RestoreConfigError(f"storage {alias!r}: {exc}") from None


def is_s3(storage: Any) -> bool:
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages without boto3
        return False
    return isinstance(storage, S3Storage)


def describe(exc: BaseException) -> str:
    """A one-line reason for a storage fault."""
    try:
        from botocore.exceptions import ClientError
    except ImportError:
        ClientError = ()
    if ClientError and isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if str(code) in ("404", "NoSuchKey", "NotFound"):
            return "no such object"
        if str(code) in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied ({code})"
        if str(code) == "NoSuchBucket":
            return f"no such bucket ({error.get('BucketName') or '?'})"
        return f"{code}: {error.get('Message') or exc}"
    return describe_error(exc)


def storage_faults() -> tuple[type[BaseException], ...]:
    faults: list[type[BaseException]] = [OSError]
    try:
        from botocore.exceptions import BotoCoreError, ClientError
        from urllib3.exceptions import HTTPError

        faults += [BotoCoreError, ClientError, HTTPError]
    except ImportError:
        pass
    return tuple(faults)


def is_missing(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) or describe(exc) == "no such object"
