from django.apps import AppConfig


class RealappsConfig(AppConfig):
    """Models of a small real project (``settings_realapps``): a custom user, a Wagtail page type
    with StreamField, rich text, tags and an orderable inline, a treebeard tree, a model under
    django-reversion, one under django-guardian object permissions, a GenericForeignKey."""

    name = "restoreproject.realapps"
    label = "realapps"
    default_auto_field = "django.db.models.BigAutoField"
