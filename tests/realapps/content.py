"""Data made through the apps' own APIs, never shaped by hand: the content the fixtures are
dumped from (``make_content``) and the rows a target database holds before the restore
(``TARGETS``). Each function runs on a freshly migrated database (the rows the migrations make:
Wagtail's root and welcome pages, its default site, root collection and locale, the Moderators
and Editors groups with their permissions, the default workflow and its task, guardian's
anonymous user, django.contrib.sites' example.com)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import reversion
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from guardian.shortcuts import assign_perm
from wagtail.models import Collection, GroupPagePermission, Page
from wagtail.rich_text import RichText
from wagtail.users.models import UserProfile

from restoreproject.realapps.models import ArticleAuthor, ArticlePage, Category, Comment, Note, Project, Term

NEW_YORK = ZoneInfo("America/New_York")


def _perms(*names: str) -> list[Permission]:
    """Permissions by ``codename`` or ``app_label.codename``."""
    found = []
    for name in names:
        app_label, _, codename = name.rpartition(".")
        lookup = {"content_type__app_label": app_label} if app_label else {}
        found.append(Permission.objects.get(codename=codename, **lookup))
    return found


def _article(parent: Page, title: str, slug: str, *, author_names, categories, tags, when, body=None, **extra):
    page = ArticlePage(
        title=title,
        slug=slug,
        intro=f"<p>{title}: the <b>intro</b>.</p>",
        published_on=when,
        body=body
        if body is not None
        else [
            ("heading", title),
            ("paragraph", RichText(f"<p>About <i>{slug}</i>, \u00e9t\u00e9 \u4e2d.</p>")),
            ("quote", {"text": "Data outlives code.", "source": "folklore"}),
            ("numbers", [3, 1, 2]),
        ],
        authors=[
            ArticleAuthor(name=name, user=user, sort_order=index) for index, (name, user) in enumerate(author_names)
        ],
        categories=categories,
        **extra,
    )
    page.tags.add(*tags)
    parent.add_child(instance=page)
    return page


def make_content() -> None:
    """The content of a small site, made the way its code would make it."""
    User = get_user_model()
    editors, moderators = Group.objects.get(name="Editors"), Group.objects.get(name="Moderators")
    authors = Group.objects.create(name="Authors")
    authors.permissions.set(_perms("add_note", "change_note", "view_project", "access_admin"))
    auditors = Group.objects.create(name="Auditors")
    auditors.permissions.set(_perms("view_note", "realapps.view_comment"))

    admin = User.objects.create_superuser(
        "admin",
        "admin@example.com",
        "admin-pw",
        display_name="The Admin",
        preferences={"theme": "dark", "language": None, "beta": True},
    )
    ann = User.objects.create_user(
        "ann",
        "ann@example.com",
        "ann-pw",
        first_name="Ann",
        display_name="Ann A.",
        preferences={"z": 1, "a": [1, 2], "unset": None},
    )
    bob = User.objects.create_user("bob", "bob@example.com", "bob-pw", last_name="Builder")
    carol = User.objects.create_user(
        "carol",
        "carol@example.com",
        "carol-pw",
        is_active=False,
        date_joined=datetime(2024, 3, 10, 2, 30, tzinfo=ZoneInfo("UTC")),
    )
    ann.groups.set([editors, authors])
    bob.groups.set([moderators, auditors])
    carol.groups.set([authors])
    ann.user_permissions.set(_perms("publish_project"))
    UserProfile.get_for_user(ann)  # Wagtail's per-user profile row (a OneToOne to the user)

    # A treebeard tree of our own, built with its API.
    topics = Category.add_root(name="Topics", slug="topics")
    science = topics.add_child(name="Science", slug="science")
    physics = science.add_child(name="Physics", slug="physics")
    art = topics.add_child(name="Art", slug="art")
    Category.add_root(name="Archive", slug="archive")

    # Terms by natural key: alpha's see_also points forward (to beta, made after it), beta's to itself.
    alpha = Term.objects.create(name="alpha", defined_at=datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK))
    beta = Term.objects.create(name="beta", defined_at=datetime(2024, 3, 10, 3, 30, tzinfo=NEW_YORK))
    alpha.see_also = beta
    alpha.save()
    beta.see_also = beta
    beta.save()

    # Wagtail pages under the welcome page the migrations made: published, then edited as a draft.
    home = Page.objects.get(depth=2)
    news = _article(
        home,
        "News",
        "news",
        author_names=[("Ann", ann), ("Guest", None)],
        categories=[science, physics],
        tags=["django", "restore"],
        when=datetime(2024, 6, 1, 9, 0, tzinfo=NEW_YORK),
    )
    first = _article(
        news,
        "First post",
        "first-post",
        author_names=[("Bob", bob)],
        categories=[art],
        tags=["restore", "Wagtail"],
        when=datetime(2024, 11, 3, 1, 15, tzinfo=NEW_YORK),
    )
    draft = _article(news, "Draft", "draft", author_names=[], categories=[], tags=[], when=None, body=[], live=False)
    for page, user in ((news, ann), (first, bob)):
        page.save_revision(user=user, log_action=True).publish(user=user, skip_permission_checks=True)
    first.title = "First post, edited"
    first.tags.add("edited")
    first.save_revision(user=ann, log_action=True)  # a draft revision on top of the live one
    draft.save_revision(user=carol, log_action=True)

    # Wagtail's own permission rows on the tree and collections.
    GroupPagePermission.objects.create(group=authors, page=news, permission=_perms("add_page")[0])
    GroupPagePermission.objects.create(group=authors, page=news, permission=_perms("change_page")[0])
    Collection.get_first_root_node().add_child(name="Press kit")

    # django-reversion: two revisions of a note, with their user and comment.
    with reversion.create_revision():
        note = Note.objects.create(title="Plan", body="first", owner=ann)
        reversion.set_user(ann)
        reversion.set_comment("created")
    with reversion.create_revision():
        note.body = "second"
        note.save()
        reversion.set_user(bob)
        reversion.set_comment("edited")
    Note.objects.create(title="Untracked", owner=bob)

    # django-guardian object permissions, for users and for a group.
    apollo = Project.objects.create(name="Apollo", settings={"b": None, "a": [1, {"y": 2, "x": None}]})
    apollo.members.set([ann, bob])
    gemini = Project.objects.create(name="Gemini")
    gemini.members.set([carol])
    assign_perm("change_project", ann, apollo)
    assign_perm("realapps.publish_project", authors, apollo)
    assign_perm("view_project", bob, apollo)
    assign_perm("view_project", auditors, gemini)

    # Comments on anything, through a GenericForeignKey.
    for target, author, text in ((news, bob, "Nice"), (note, ann, "On the plan"), (apollo, None, "Anonymous")):
        Comment.objects.create(
            target=target, author=author, text=text, posted_at=datetime(2024, 11, 3, 1, 45, fold=0, tzinfo=NEW_YORK)
        )
    admin.save()


def _advance_sequences(to: int = 1000) -> None:
    """Every auto-numbered table's next id past ``to``: rows made afterwards through the APIs
    cannot take a pk the fixture's objects have."""
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            if (
                model._meta.proxy
                or not model._meta.managed
                or model._meta.pk.get_internal_type() not in ("AutoField", "BigAutoField", "SmallAutoField")
            ):
                continue
            table = model._meta.db_table
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                    [connection.ops.quote_name(table), model._meta.pk.column, to],
                )
            else:
                cursor.execute("DELETE FROM sqlite_sequence WHERE name = %s", [table])
                cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, to])


def _outsiders(prefix: str) -> None:
    """Users, a group and memberships the fixtures do not hold, and content of theirs."""
    User = get_user_model()
    editors, moderators = Group.objects.get(name="Editors"), Group.objects.get(name="Moderators")
    staff = Group.objects.create(name=f"{prefix} staff")
    staff.permissions.set(_perms("view_note"))
    zed = User.objects.create_user(f"{prefix}-zed", "zed@example.com", "pw", preferences={"k": None, "j": 1})
    yan = User.objects.create_user(f"{prefix}-yan", "yan@example.com", "pw")
    zed.groups.set([editors, staff])  # memberships pointing at groups the fixtures hold too
    yan.groups.set([moderators])
    zed.user_permissions.set(_perms("view_project"))
    note = Note.objects.create(title=f"{prefix} note", owner=zed)
    project = Project.objects.create(name=f"{prefix} project")
    project.members.set([zed, yan])
    assign_perm("view_project", yan, project)
    assign_perm("change_project", staff, project)
    Comment.objects.create(target=note, author=yan, text="outside", posted_at=datetime(2025, 1, 1, tzinfo=NEW_YORK))
    # A category tree whose first roots were deleted: the remaining root's path is the third one,
    # where the fixtures' trees have two (a treebeard path is unique; loaddata would refuse a clash).
    # (node_order_by = name: the deleted ones sort first.)
    gone = [Category.add_root(name=f"{prefix} a-gone {index}", slug=f"{prefix}-gone-{index}") for index in (1, 2)]
    Category.add_root(name=f"{prefix} category", slug=f"{prefix}-category")
    for category in gone:
        Category.objects.get(pk=category.pk).delete()
    page = ArticlePage(title=f"{prefix} page", slug=f"{prefix}-page")
    page.tags.add(f"{prefix}-tag")
    Page.get_first_root_node().add_child(instance=page)  # a second tree under the root, beside the welcome page


def seed_lived_in() -> None:
    """Outside rows whose pks cannot meet the fixtures' (every sequence advanced past 1000 first)."""
    _advance_sequences()
    _outsiders("lived")


def seed_collide() -> None:
    """Outside rows made straight after migrate: they take the next pks, the very pks the
    fixtures' users (2, 3...), groups (3, 4), notes, projects, comments, categories, tags and
    pages have, under other names: loaddata overwrites them by pk, as it would in real life."""
    _outsiders("clash")


TARGETS = {
    "migrated": lambda: None,  # the rows the migrations make, nothing else
    "lived-in": seed_lived_in,
    "collide": seed_collide,
}
