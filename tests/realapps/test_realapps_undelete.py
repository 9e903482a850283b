"""``restore_backup --select`` on real apps: a Wagtail page deleted the way Wagtail deletes it
(multi-table inheritance, revisions through a generic relation, ParentalKey children, taggit
tags, a ParentalManyToManyField), brought back from the corpus's own backup.

Derived state: Wagtail's page tree is treebeard's materialised path. The delete decremented the
parent's ``numchild``; the undelete touches nothing but the rows it restores, so treebeard's own
check (``find_problems``) names the parent until ``Page.fix_tree()`` recounts it, as the docs say."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command


def _rows(model, keys) -> list[dict]:
    return list(model.objects.filter(pk__in=keys).order_by("pk").values())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_deleted_page_comes_back_with_what_wagtail_deleted_with_it(corpus, django_db_blocker):
    from wagtail.models import Page, Revision

    from restoreproject.realapps.models import ArticleAuthor, ArticlePage, ArticleTag

    databases = corpus.databases
    with django_db_blocker.unblock():
        databases.copy("migrated", "undelete")
        try:
            with databases.using("undelete"):
                call_command("restore_backup", str(corpus.backup), "--noinput", "--no-safety-backup", verbosity=0)
                page = next(p for p in ArticlePage.objects.order_by("pk") if p.is_leaf() and p.tagged_items.exists())
                pk, parent = page.pk, page.get_parent()
                categories = ArticlePage.categories.through
                owned = {
                    Page: [pk],
                    ArticlePage: [pk],
                    ArticleTag: list(page.tagged_items.values_list("pk", flat=True)),
                    ArticleAuthor: list(page.authors.values_list("pk", flat=True)),
                    categories: list(categories.objects.filter(articlepage=pk).values_list("pk", flat=True)),
                    Revision: list(
                        Revision.objects.filter(
                            base_content_type=ContentType.objects.get_for_model(Page), object_id=str(pk)
                        ).values_list("pk", flat=True)
                    ),
                }
                assert all(owned.values()), owned  # the page has each kind of row
                before = {model: _rows(model, keys) for model, keys in owned.items()}
                others = {model: model.objects.exclude(pk__in=keys).count() for model, keys in owned.items()}

                page.delete()
                assert not any(model.objects.filter(pk__in=keys).exists() for model, keys in owned.items())
                call_command(
                    "restore_backup",
                    str(corpus.backup),
                    "--select",
                    f"wagtailcore.Page:pk={pk}",
                    "--noinput",
                    verbosity=0,
                )

                for model, rows in before.items():
                    assert _rows(model, owned[model]) == rows, model  # field by field, as the backup holds them
                assert {model: model.objects.exclude(pk__in=keys).count() for model, keys in owned.items()} == others
                assert ArticlePage.objects.get(pk=pk).tags.count() == len(owned[ArticleTag])
                # treebeard's own check: only the parent's child count, which the delete changed.
                evil_chars, bad_steplen, orphans, wrong_depth, wrong_numchild = Page.find_problems()
                assert (evil_chars, bad_steplen, orphans, wrong_depth) == ([], [], [], [])
                assert wrong_numchild == [parent.pk]
                Page.fix_tree()
                assert all(not problems for problems in Page.find_problems())
        finally:
            databases.drop("undelete")
