"""Settings of the demo project.

Configured from the environment, twelve-factor style:

* ``DATABASE_URL``: default a SQLite file in the project (``db.sqlite3``);
  ``postgres://postgres@127.0.0.1:5432/NAME`` switches to PostgreSQL.
* ``REDIS_URL``: default ``redis://127.0.0.1:6379/0``.
* ``DBRESTORE_BACKUP_DIR``: where backups are listed and written (default ``backups/``).
* ``DBRESTORE_SYNC_JOBS``: run restore jobs in the web process instead of RQ (default: on
  for SQLite, where no worker can see a running restore anyway).
* ``DBRESTORE_S3_BUCKET``: keep the backups in this S3 bucket (the ``backups`` storage below)
  instead of ``DBRESTORE_BACKUP_DIR``; ``DBRESTORE_S3_ENDPOINT_URL`` for an S3-compatible
  server, ``DBRESTORE_S3_PREFIX`` (default ``dbrestore``) for the key prefix. Credentials come
  the usual boto3 way (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, a role).
* ``DBRESTORE_GPG_RECIPIENTS``: comma-separated keys ``create_backup`` encrypts for.
* ``DBRESTORE_SETTINGS_JSON``: more ``DBRESTORE`` keys, as one JSON object (the tests' workers).
"""

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dbrestore-demo-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "dbrestore",
    "restoreproject.shop",
    "restoreproject.fidelity",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "django.contrib.redirects",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "restoreproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "restoreproject.wsgi.application"

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that subprocesses (workers, killed restores) see the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
SITE_ID = 1

STATIC_URL = "static/"
MEDIA_ROOT = BASE_DIR / "media"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_IS_SQLITE = DATABASES["default"]["ENGINE"].endswith("sqlite3")

# django-rq's own admin entry would show its dashboard to every staff user; it is mounted in
# urls.py instead, behind dbrestore's restore permission (dbrestore.admin.dashboard).
RQ_SHOW_ADMIN_LINK = False

RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 360},
    "dbrestore": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 24 * 3600},
}

STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if os.environ.get("DBRESTORE_S3_BUCKET"):
    STORAGES["backups"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["DBRESTORE_S3_BUCKET"],
            "endpoint_url": os.environ.get("DBRESTORE_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "location": os.environ.get("DBRESTORE_S3_PREFIX", "dbrestore"),
            "file_overwrite": False,
        },
    }

DBRESTORE = {
    "BACKUP_DIR": os.environ.get("DBRESTORE_BACKUP_DIR", str(BASE_DIR / "backups")),
    "STORAGE": "backups" if "backups" in STORAGES else None,
    "GPG_RECIPIENTS": [r for r in os.environ.get("DBRESTORE_GPG_RECIPIENTS", "").split(",") if r],
    "QUEUE": "dbrestore",
    "SYNC_JOBS": os.environ.get("DBRESTORE_SYNC_JOBS", "1" if _IS_SQLITE else "0") == "1",
    # More keys as one JSON object (workers started by the tests, say: '{"DISTRIBUTE_RETRIES": 1}').
    **json.loads(os.environ.get("DBRESTORE_SETTINGS_JSON") or "{}"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "dbrestore": {"handlers": ["console"], "level": os.environ.get("DBRESTORE_LOG_LEVEL", "WARNING")},
    },
}
