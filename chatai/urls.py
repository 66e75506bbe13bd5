from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from chatai import views
from core import views as core_views
from tenants.views import invitation_accept_view

urlpatterns = [
    path("", views.landing, name="landing"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("", include("channels_app.urls")),
    path("api/", include("chatai.api_urls")),
    path("metrics", views.metrics, name="metrics"),
    # Where an invitation to a tenant is accepted (the one-time link of tenants.members).
    path("accounts/invite/<str:token>/", invitation_accept_view, name="invitation-accept"),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
