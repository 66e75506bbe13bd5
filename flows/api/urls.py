"""Routes under /api/tenants/<tenant>/ (assembled in chatai/api_urls.py)."""

from rest_framework.routers import SimpleRouter

from flows.api import views

tenant_router = SimpleRouter()
tenant_router.register("flows", views.FlowViewSet, basename="flow")
