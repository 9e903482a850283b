"""The models of ``restoreproject.realapps``, each written the way its app's docs show."""

from __future__ import annotations

import reversion
from django.contrib.auth.models import AbstractUser, UserManager
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey, ParentalManyToManyField
from taggit.models import TaggedItemBase
from treebeard.mp_tree import MP_Node, MP_NodeManager
from wagtail import blocks
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Orderable, Page


class PreferencesField(models.JSONField):
    """A JSONField subclass with its own ``get_prep_value``, as apps ship them: keys sorted,
    ``None`` values dropped before the value goes to the database."""

    def get_prep_value(self, value):
        if isinstance(value, dict):
            value = {key: value[key] for key in sorted(value) if value[key] is not None}
        return super().get_prep_value(value)


class User(AbstractUser):
    """The project's user model (``AUTH_USER_MODEL``), natural key ``username``."""

    display_name = models.CharField(max_length=100, blank=True)
    preferences = PreferencesField(default=dict, blank=True)

    objects = UserManager()


class CategoryManager(MP_NodeManager):
    def get_by_natural_key(self, slug):
        return self.get(slug=slug)


class Category(MP_Node):
    """A treebeard materialised-path tree, natural key ``slug``."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    node_order_by = ["name"]
    objects = CategoryManager()

    def natural_key(self):
        return (self.slug,)

    def __str__(self):
        return self.name


class TermManager(models.Manager):
    def get_by_natural_key(self, name):
        return self.get(name=name)


class Term(models.Model):
    """A glossary term by natural key whose ``see_also`` may point to a term made after it."""

    name = models.CharField(max_length=100, unique=True)
    see_also = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    defined_at = models.DateTimeField()

    objects = TermManager()

    def natural_key(self):
        return (self.name,)


class ArticleTag(TaggedItemBase):
    content_object = ParentalKey("ArticlePage", related_name="tagged_items", on_delete=models.CASCADE)


class ArticlePage(Page):
    """A Wagtail page type (multi-table inheritance from ``wagtailcore.Page``)."""

    intro = RichTextField(blank=True)
    body = StreamField(
        [
            ("heading", blocks.CharBlock()),
            ("paragraph", blocks.RichTextBlock()),
            ("quote", blocks.StructBlock([("text", blocks.TextBlock()), ("source", blocks.CharBlock(required=False))])),
            ("numbers", blocks.ListBlock(blocks.IntegerBlock())),
        ],
        blank=True,
    )
    published_on = models.DateTimeField(null=True, blank=True)
    tags = ClusterTaggableManager(through=ArticleTag, blank=True)
    categories = ParentalManyToManyField(Category, blank=True, related_name="articles")


class ArticleAuthor(Orderable):
    """An orderable inline child of the page, by ParentalKey."""

    page = ParentalKey(ArticlePage, related_name="authors", on_delete=models.CASCADE)
    name = models.CharField(max_length=100)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")


@reversion.register()
class Note(models.Model):
    """Under django-reversion: each save in a revision block stores a Version."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notes")
    updated_at = models.DateTimeField(auto_now=True)


class Project(models.Model):
    """Under django-guardian object permissions (``assign_perm``)."""

    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(User, blank=True, related_name="projects")
    settings = PreferencesField(default=dict, blank=True)

    class Meta:
        permissions = [("publish_project", "Can publish the project")]


class Comment(models.Model):
    """A GenericForeignKey to anything (pages, notes, projects)."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    target = GenericForeignKey("content_type", "object_id")
    author = models.ForeignKey(User, null=True, on_delete=models.SET_NULL)
    text = models.TextField()
    posted_at = models.DateTimeField()
