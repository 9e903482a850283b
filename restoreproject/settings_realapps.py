"""Settings of the real-app corpus (``tests/realapps/``): the demo project's settings plus
Wagtail and the apps real projects bring along (django-taggit, django-modelcluster,
django-treebeard, django-reversion, django-guardian) and ``restoreproject.realapps``, a small app
of our own that uses each of them the way their docs show. Only the tests use it:

    .venv/bin/python -m pytest tests/realapps --ds restoreproject.settings_realapps

A custom user model (``realapps.User``), a time zone with daylight saving time, and only what
the apps' migrations and models need (no Wagtail URLs, images or documents).
"""

from restoreproject.settings import *  # noqa: F403
from restoreproject.settings import INSTALLED_APPS

# The demo's own apps (shop, fidelity) are the main suite's; this corpus is about other people's.
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in ("restoreproject.shop", "restoreproject.fidelity")]
INSTALLED_APPS += [
    "restoreproject.realapps",
    "wagtail.users",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "treebeard",
    "reversion",
    "guardian",
]

AUTH_USER_MODEL = "realapps.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]

TIME_ZONE = "America/New_York"
USE_TZ = True

WAGTAIL_SITE_NAME = "dbrestore real apps"
WAGTAILADMIN_BASE_URL = "http://testserver"

DATABASES = {"default": {**DATABASES["default"]}}  # noqa: F405 - a copy: the demo's settings stay as they are
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Its own test database file, so that this pass and the main suite's can run at once.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db_realapps.sqlite3")}  # noqa: F405
