"""The RQ dashboard is for users who may restore: the permission matrix over its pages and
actions, with a real queued restore job in the local Redis."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from dbrestore.models import RestoreRun

pytestmark = pytest.mark.django_db(transaction=True)


def make_user(name: str, *, staff: bool = True, superuser: bool = False, perms: tuple[str, ...] = ()) -> Client:
    user = User.objects.create_user(name, password="pw", is_staff=staff, is_superuser=superuser)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="dbrestore", codename__in=perms))
    client = Client()
    client.force_login(user)
    return client


# who -> may open the dashboard
MATRIX = {
    "staff, no permission": ({}, False),
    "staff, may view runs": ({"perms": ("view_restorerun",)}, False),
    "staff, may restore": ({"perms": ("run_restore",)}, True),
    "superuser": ({"superuser": True}, True),
    "not staff, may restore": ({"staff": False, "perms": ("run_restore",)}, "login"),
}


@pytest.fixture
def queued_job(redis_queue, sample_backup, run_command):
    out, _ = run_command("restore_backup", sample_backup(rows=50), "--async", "--noinput")
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert run.status == "queued" and redis_queue.fetch_job(run.job_id) is not None
    return run


def dashboard_urls(run: RestoreRun) -> dict[str, str]:
    from django_rq.settings import get_queues_list

    index = [queue["name"] for queue in get_queues_list()].index("dbrestore")
    return {
        "home": reverse("django_rq:home"),
        "jobs": reverse("django_rq:jobs", args=[index]),
        "job": reverse("django_rq:job_detail", args=[index, run.job_id]),
        "delete": reverse("django_rq:delete_job", args=[index, run.job_id]),
        "stats": reverse("django_rq:home_json"),
    }


@pytest.mark.parametrize("who", list(MATRIX))
def test_permission_matrix(who, queued_job, redis_queue):
    options, allowed = MATRIX[who]
    client = make_user("u", **options)
    urls = dashboard_urls(queued_job)
    for name in ["home", "jobs", "job", "delete", "stats"]:
        response = client.get(urls[name])
        if allowed is True:
            assert response.status_code == 200, (who, name)
        elif allowed == "login":
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (who, name)
        else:
            assert response.status_code == 403, (who, name)
    if allowed is True:
        assert queued_job.job_id in client.get(urls["job"]).content.decode()
    # deleting the job: only the permitted may, and then it is gone
    response = client.post(urls["delete"], {"post": "yes"})
    job = redis_queue.fetch_job(queued_job.job_id)
    if allowed is True:
        assert response.status_code == 302 and job is None
    else:
        assert response.status_code in (302, 403) and job is not None, who
        assert response.status_code == 403 or "/admin/login/" in response["Location"]


def test_anonymous_goes_to_login(client, queued_job):
    for name, url in dashboard_urls(queued_job).items():
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], name


@pytest.mark.parametrize("who", [who for who, (_, allowed) in MATRIX.items() if allowed != "login"])  # staff only
def test_links_to_the_dashboard_only_for_who_may_open_it(who, queued_job):
    options, allowed = MATRIX[who]
    options = {**options, "perms": (*options.get("perms", ()), "view_restorerun")}
    client = make_user("u", **options)
    job_url = dashboard_urls(queued_job)["job"]
    pages = [
        reverse("admin:index"),
        reverse("admin:dbrestore_restorerun_change", args=[queued_job.pk]),
        reverse("admin:dbrestore_restorerun_progress_page", args=[queued_job.pk]),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        content = response.content.decode()
        link = reverse("django_rq:home") if page == pages[0] else job_url  # the header link, the job's link
        assert (link in content) is (allowed is True), (who, page)


def test_django_rq_admin_entry_is_not_mounted(queued_job):
    client = make_user("u", perms=())
    assert client.get("/admin/django_rq/dashboard/").status_code == 404
    assert "django_rq" not in client.get(reverse("admin:index")).content.decode()
