"""Routes under /api/tenants/<tenant>/ (assembled in chatai/api_urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from channels_app.api import views

tenant_router = SimpleRouter()
tenant_router.register("channels", views.ChannelViewSet, basename="channel")

urlpatterns = [
    path(
        "channels/<uuid:channel>/templates/",
        views.ChannelTemplateListView.as_view(),
        name="channel-templates",
    ),
    path(
        "channels/<uuid:channel>/templates/sync/",
        views.ChannelTemplateSyncView.as_view(),
        name="channel-templates-sync",
    ),
]
