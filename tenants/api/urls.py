"""Routes of tenants, their API keys and the staff login (assembled in chatai/api_urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from tenants.api import views

router = SimpleRouter()
router.register("tenants", views.TenantViewSet, basename="tenant")

# Under /api/tenants/<tenant>/
tenant_router = SimpleRouter()
tenant_router.register("api-keys", views.APIKeyViewSet, basename="api-key")
tenant_router.register("members", views.MemberViewSet, basename="member")
tenant_router.register("invitations", views.InvitationViewSet, basename="invitation")

controller_urlpatterns = [
    path("controller/auth", views.LoginView.as_view(), name="controller-auth"),
    path("controller/logout", views.LogoutView.as_view(), name="controller-logout"),
    path("controller/me", views.MeView.as_view(), name="controller-me"),
]
