"""The RQ dashboard (django-rq's views) behind dbrestore's permission.

django-rq only asks for ``is_staff``, and its job pages can delete or re-enqueue a queued
restore's job. Mount it with ``path("django-rq/", include(rq_dashboard_urls()))`` instead of
``include("django_rq.urls")`` (and set ``RQ_SHOW_ADMIN_LINK = False``, which would mount the same
views in the admin for all staff): only users with ``dbrestore.run_restore`` (superusers have
it) open it."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

RESTORE_PERMISSION = "dbrestore.run_restore"


def can_use_dashboard(user) -> bool:
    """Whether ``user`` may open the RQ dashboard (the header link and job links follow this)."""
    return bool(user and user.is_active and user.is_staff and user.has_perm(RESTORE_PERMISSION))


def restore_permission_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff login first (anonymous users go to the admin login), then the restore permission (403)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not can_use_dashboard(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return staff_member_required(wrapper)


def rq_dashboard_urls() -> tuple[list, str]:
    """django-rq's URL patterns, every view wrapped in :func:`restore_permission_required`, under
    the ``django_rq`` namespace, for ``include()``."""
    from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

    api = get_api_urlpatterns()
    for pattern in api:  # the stats JSON: staff or an RQ_API_TOKEN in django-rq; here the permission
        pattern.callback = restore_permission_required(pattern.callback)
    return [*api, *get_admin_urlpatterns(view_wrapper=restore_permission_required)], "django_rq"
