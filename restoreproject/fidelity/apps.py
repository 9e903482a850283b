from django.apps import AppConfig


class FidelityConfig(AppConfig):
    """Test models covering what Django's serializers can express (the loaddata differential test)."""

    name = "restoreproject.fidelity"
    default_auto_field = "django.db.models.AutoField"
