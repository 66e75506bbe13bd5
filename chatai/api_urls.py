"""The tenant API under /api/: staff login, tenants and everything nested under a tenant.

Every tenant resource lives under `tenants/<tenant>/`; each app contributes a router
(`<app>/api/urls.py`). Anything else under /api/ answers the JSON 404 envelope.
"""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from channels_app.api import urls as channel_urls
from conversations.api import urls as conversation_urls
from core.api_base import api_not_found
from core.api_root import ApiRootView
from flows.api import urls as flow_urls
from integrations.api import urls as integration_urls
from tenants.api import urls as tenant_urls

tenant_scoped = [
    *tenant_urls.tenant_router.urls,
    *channel_urls.tenant_router.urls,
    *channel_urls.urlpatterns,
    *flow_urls.tenant_router.urls,
    *conversation_urls.tenant_router.urls,
    *conversation_urls.urlpatterns,
    *integration_urls.tenant_router.urls,
]

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    *tenant_urls.controller_urlpatterns,
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (`?script`), not inline, so
    # the page runs under the Content-Security-Policy's `script-src 'self'`.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
    *tenant_urls.router.urls,
    path("tenants/<uuid:tenant>/", include(tenant_scoped)),
    re_path(r"^.*$", api_not_found, name="api-not-found"),
]
