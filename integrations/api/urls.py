"""Routes under /api/tenants/<tenant>/ (assembled in chatai/api_urls.py)."""

from rest_framework.routers import SimpleRouter

from core.api_base import UUID_PATTERN
from integrations.api import views

tenant_router = SimpleRouter()
tenant_router.register("webhooks", views.WebhookEndpointViewSet, basename="webhook")
tenant_router.register(
    rf"webhooks/(?P<webhook>{UUID_PATTERN})/deliveries",
    views.WebhookDeliveryViewSet,
    basename="webhook-delivery",
)
