"""Tenants, their API keys, and the staff login of the API."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.middleware.csrf import get_token
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_base import (
    UUID_PATTERN,
    IsStaff,
    TenantScopedMixin,
    error_response,
    request_is_staff,
    tenant_for_request,
)
from core.context import bind_tenant
from tenants import selectors
from tenants.api.lockout import login_retry_after
from tenants.api.serializers import (
    APIKeyCreatedSerializer,
    APIKeySerializer,
    LoginResultSerializer,
    LoginSerializer,
    StaffUserSerializer,
    TenantSerializer,
)
from tenants.api_keys import api_key_create, api_key_revoke
from tenants.models import Tenant
from tenants.services import tenant_create, tenant_update

# Fields an API key may not change on its own tenant (403): they are the staff's decisions.
STAFF_ONLY_TENANT_FIELDS = ("is_active", "slug")


@extend_schema_view(
    list=extend_schema(summary="List tenants (staff only)"),
    create=extend_schema(summary="Create a tenant and its project config (staff only)"),
    retrieve=extend_schema(summary="A tenant (staff, or an API key of this tenant)"),
    partial_update=extend_schema(
        summary="Update a tenant; an API key may not change is_active or slug"
    ),
    destroy=extend_schema(summary="Soft-delete a tenant (staff only)"),
)
class TenantViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """`/api/tenants/` (staff) and `/api/tenants/{tenant}/`.

    The list and create routes do not exist for an API key (404, as for any route outside its
    tenant); on its own tenant a key may read and update, not delete (403).
    """

    serializer_class = TenantSerializer
    queryset = Tenant.objects.none()
    lookup_url_kwarg = "tenant"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_classes = TenantScopedMixin.permission_classes

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method.lower() not in self.action_map:
            # The route exists (it is in the public schema): an unsupported method is a 405
            # with `Allow`, for a key too, before the key's 404 for the tenant list.
            raise exceptions.MethodNotAllowed(request.method)
        if self.lookup_url_kwarg in kwargs:
            self.tenant = tenant_for_request(request, kwargs[self.lookup_url_kwarg])
            bind_tenant(self.tenant.pk)
            if self.action == "destroy" and not request_is_staff(request):
                raise exceptions.PermissionDenied("Only staff users may delete a tenant.")
        elif not request_is_staff(request):
            raise exceptions.NotFound()

    def get_queryset(self):
        return selectors.tenant_list()

    def get_object(self) -> Tenant:
        return selectors.tenant_list().get(pk=self.tenant.pk)

    def perform_create(self, serializer: TenantSerializer) -> None:
        serializer.instance = tenant_create(**serializer.validated_data)

    def perform_update(self, serializer: TenantSerializer) -> None:
        data = dict(serializer.validated_data)
        if not request_is_staff(self.request):
            refused = [field for field in STAFF_ONLY_TENANT_FIELDS if field in data]
            if refused:
                raise exceptions.PermissionDenied(
                    f"Only staff users may change: {', '.join(refused)}."
                )
        tenant_update(tenant=serializer.instance, data=data)
        serializer.instance = selectors.tenant_list().get(pk=serializer.instance.pk)

    def perform_destroy(self, instance: Tenant) -> None:
        instance.soft_delete()


@extend_schema_view(
    list=extend_schema(summary="List the tenant's API keys (staff only)"),
    create=extend_schema(
        summary="Create an API key (staff only); the answer holds the key, once",
        request=APIKeySerializer,
        responses={201: APIKeyCreatedSerializer},
    ),
    destroy=extend_schema(summary="Revoke an API key (staff only)"),
)
class APIKeyViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A tenant's API keys. Staff only: a key gets 403 here on its own tenant, 404 elsewhere."""

    staff_only = True
    serializer_class = APIKeySerializer
    lookup_url_kwarg = "key"
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.api_key_list(tenant=None).none()
        return selectors.api_key_list(tenant=self.tenant)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, raw_key = api_key_create(
            tenant=self.tenant, name=serializer.validated_data["name"]
        )
        api_key.key = raw_key
        return Response(APIKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Any) -> None:
        api_key_revoke(api_key=instance)


# --- Staff login --------------------------------------------------------------------------


def _user_data(user: Any) -> dict[str, Any]:
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
    }


class LoginView(APIView):
    """`POST /api/controller/auth`: a staff user's username and password -> a session.

    Exempt from CSRF (a JSON client has no token yet); the answer sets the `csrftoken` cookie
    and returns the token for later unsafe requests. Every attempt goes through
    `django.contrib.auth.authenticate`, so django-axes counts failures and locks out the
    username or address (shared with the admin login) with 429 and Retry-After.
    A valid non-staff user is refused exactly like a wrong password.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Log in as staff (session cookie valid 24 hours)",
        request=LoginSerializer,
        responses={
            200: LoginResultSerializer,
            **error_response("400"),
            **error_response("401", "Wrong credentials, or not a staff user."),
            **error_response("429", "Locked out after too many failures; see Retry-After."),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        django_request = request._request
        user = authenticate(
            request=django_request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if getattr(django_request, "axes_locked_out", False):
            # We answer the lockout ourselves (JSON envelope + Retry-After), so the axes
            # middleware must not replace this answer with its plain-text page.
            django_request.axes_locked_out = False
            raise exceptions.Throttled(
                wait=login_retry_after(django_request, serializer.validated_data["username"]),
                detail="Too many failed login attempts. Try again later.",
            )
        if user is None or not user.is_staff or not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid username or password.")
        login(django_request, user)
        return Response(
            {
                "user": _user_data(user),
                "csrf_token": get_token(django_request),
                "session_expires_at": timezone.now()
                + timedelta(seconds=settings.SESSION_COOKIE_AGE),
            }
        )

    def get_authenticate_header(self, request: Request) -> str:
        return 'Session realm="api"'


class LogoutView(APIView):
    """`POST /api/controller/logout`: ends the staff session (CSRF protected)."""

    permission_classes = [IsStaff]

    @extend_schema(summary="Log out", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """`GET /api/controller/me`: the logged-in staff user."""

    permission_classes = [IsStaff]

    @extend_schema(summary="The logged-in staff user", responses={200: StaffUserSerializer})
    def get(self, request: Request) -> Response:
        return Response(_user_data(request.user))


__all__ = [
    "APIKeyViewSet",
    "LoginView",
    "LogoutView",
    "MeView",
    "TenantViewSet",
]
