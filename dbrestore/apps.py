from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DbRestoreConfig(AppConfig):
    name = "dbrestore"
    verbose_name = _("Database restore")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dbrestore import checks  # noqa: F401  (registers the system checks)
