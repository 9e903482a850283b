from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dbrestore.admin.dashboard import rq_dashboard_urls

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("django-rq/", include(rq_dashboard_urls())),  # django-rq's views, for users who may restore
]
