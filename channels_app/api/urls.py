"""Routes under /api/tenants/<tenant>/ (assembled in chatai/api_urls.py)."""

from rest_framework.routers import SimpleRouter

from channels_app.api import views

tenant_router = SimpleRouter()
tenant_router.register("channels", views.ChannelViewSet, basename="channel")
