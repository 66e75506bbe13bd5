"""Tenants, their API keys, and the staff login of the API."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.db.models import QuerySet
from django.middleware.csrf import get_token
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_base import UUID_PATTERN, error_response
from core.context import bind_tenant
from tenants import access, selectors
from tenants.access import Action
from tenants.api.lockout import login_retry_after
from tenants.api.serializers import (
    APIKeyCreatedSerializer,
    APIKeySerializer,
    InvitationCreatedSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    LoginResultSerializer,
    LoginSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    StaffUserSerializer,
    TenantSerializer,
)
from tenants.api_base import (
    HasTenantAccess,
    IsLoggedIn,
    IsSessionUser,
    TenantScopedMixin,
    request_api_key,
    request_user,
    require,
    tenant_for_request,
)
from tenants.api_keys import api_key_create, api_key_revoke
from tenants.members import (
    invitation_create,
    invitation_revoke,
    invitation_url,
    member_remove,
    member_update,
)
from tenants.models import Tenant, TenantAPIKey, TenantInvitation, TenantMembership
from tenants.services import tenant_create, tenant_update

# Fields only platform staff may change (403 for owners and keys): they are the platform's
# decisions (switching a tenant off, its public slug).
PLATFORM_TENANT_FIELDS = ("is_active", "slug")


@extend_schema_view(
    list=extend_schema(summary="List the tenants you may see (not for API keys)"),
    create=extend_schema(summary="Create a tenant and its project config (platform staff)"),
    retrieve=extend_schema(summary="A tenant"),
    partial_update=extend_schema(
        summary="Update a tenant; is_active and slug are for platform staff only"
    ),
    destroy=extend_schema(summary="Soft-delete a tenant (platform staff)"),
)
class TenantViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """`/api/tenants/` and `/api/tenants/{tenant}/`.

    The list shows the tenants the caller sees (every one for platform staff, their own for a
    member); for an API key it does not exist (404, as for any route outside its tenant).
    Creating and deleting tenants is for platform staff (403 otherwise).
    """

    serializer_class = TenantSerializer
    queryset = Tenant.objects.none()
    lookup_url_kwarg = "tenant"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    permission_classes = [HasTenantAccess]
    _detail_actions: Mapping[str, Action] = {
        "retrieve": Action.VIEW,
        "partial_update": Action.MANAGE,
        "update": Action.MANAGE,
        "destroy": Action.PLATFORM,
        "metadata": Action.VIEW,
    }

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method.lower() not in self.action_map:
            # The route exists (it is in the public schema): an unsupported method is a 405
            # with `Allow`, for a key too, before the key's 404 for the tenant list.
            raise exceptions.MethodNotAllowed(request.method)
        if self.lookup_url_kwarg in kwargs:
            self.tenant = tenant_for_request(request, kwargs[self.lookup_url_kwarg])
            bind_tenant(self.tenant.pk)
            require(request, self._detail_actions.get(self.action, Action.MANAGE), self.tenant)
        elif request_api_key(request) is not None:
            raise exceptions.NotFound()
        elif self.action == "create" and not access.is_platform_staff(request.user):
            raise exceptions.PermissionDenied(access.denied_message(Action.PLATFORM))

    def get_queryset(self):
        return access.scope(selectors.tenant_list(), self.request.user, tenant_field="pk")

    def get_object(self) -> Tenant:
        return selectors.tenant_list().get(pk=self.tenant.pk)

    def perform_create(self, serializer: TenantSerializer) -> None:
        serializer.instance = tenant_create(**serializer.validated_data)

    def perform_update(self, serializer: TenantSerializer) -> None:
        data = dict(serializer.validated_data)
        if not access.can(self.request.user, Action.PLATFORM, self.tenant):
            refused = [field for field in PLATFORM_TENANT_FIELDS if field in data]
            if refused:
                raise exceptions.PermissionDenied(
                    f"Only platform staff may change: {', '.join(refused)}."
                )
        tenant_update(tenant=serializer.instance, data=data)
        serializer.instance = selectors.tenant_list().get(pk=serializer.instance.pk)

    def perform_destroy(self, instance: Tenant) -> None:
        instance.soft_delete()


@extend_schema_view(
    list=extend_schema(summary="List the tenant's API keys (owners and platform staff)"),
    create=extend_schema(
        summary="Create an API key (owners and platform staff); the answer holds the key, once",
        request=APIKeySerializer,
        responses={201: APIKeyCreatedSerializer},
    ),
    destroy=extend_schema(summary="Revoke an API key (owners and platform staff)"),
)
class APIKeyViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A tenant's API keys: for its owners and platform staff. A key gets 403 here on its own
    tenant (a key never mints or revokes keys), 404 elsewhere."""

    read_action = write_action = Action.MANAGE_KEYS
    serializer_class = APIKeySerializer
    lookup_url_kwarg = "key"
    lookup_value_regex = UUID_PATTERN

    queryset = TenantAPIKey.objects.all()

    def base_queryset(self) -> QuerySet:
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


@extend_schema_view(
    list=extend_schema(summary="List the tenant's members (owners and platform staff)"),
    retrieve=extend_schema(summary="A member"),
    partial_update=extend_schema(
        summary="Change a member's role (the last owner keeps it)",
        request=MemberUpdateSerializer,
        responses={200: MemberSerializer},
    ),
    destroy=extend_schema(summary="Remove a member (not the last owner)"),
)
class MemberViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Who may log in to the tenant, and with which role. For the tenant's owners and platform
    staff; agents, viewers and API keys get 403. People join through invitations."""

    read_action = write_action = Action.MANAGE_MEMBERS
    serializer_class = MemberSerializer
    queryset = TenantMembership.objects.select_related("user").order_by("role", "created_at")
    lookup_url_kwarg = "member"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_serializer_class(self) -> type:
        if self.action in ("partial_update", "update"):
            return MemberUpdateSerializer
        return MemberSerializer

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        membership = self.get_object()
        serializer = MemberUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = member_update(membership=membership, role=serializer.validated_data["role"])
        access.forget_roles(request.user)
        return Response(MemberSerializer(membership).data)

    def perform_destroy(self, instance: TenantMembership) -> None:
        member_remove(membership=instance)
        access.forget_roles(self.request.user)


@extend_schema_view(
    list=extend_schema(summary="List the tenant's invitations (owners and platform staff)"),
    create=extend_schema(
        summary="Invite someone; the answer holds the one-time link, once",
        request=InvitationCreateSerializer,
        responses={201: InvitationCreatedSerializer},
    ),
    retrieve=extend_schema(summary="An invitation"),
    destroy=extend_schema(summary="Withdraw an invitation (an accepted one stays accepted)"),
)
class InvitationViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Invitations to join the tenant with a role. The link is answered once, to pass on;
    whoever opens it joins with their own account."""

    read_action = write_action = Action.MANAGE_MEMBERS
    serializer_class = InvitationSerializer
    queryset = TenantInvitation.objects.order_by("-created_at", "-id")
    lookup_url_kwarg = "invitation"
    lookup_value_regex = UUID_PATTERN

    def get_serializer_class(self) -> type:
        return InvitationCreateSerializer if self.action == "create" else InvitationSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, raw_token = invitation_create(
            tenant=self.tenant, invited_by=request_user(request), **serializer.validated_data
        )
        invitation.invite_url = invitation_url(raw_token=raw_token)
        return Response(
            InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED
        )

    def perform_destroy(self, instance: TenantInvitation) -> None:
        invitation_revoke(invitation=instance)
        instance.soft_delete()


# --- Staff login --------------------------------------------------------------------------


def _user_data(user: Any) -> dict[str, Any]:
    roles = access.member_roles(user)
    names = dict(Tenant.objects.filter(pk__in=list(roles)).values_list("pk", "name"))
    return {
        "id": user.pk,
        "username": user.get_username(),
        "email": user.email,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "is_platform_staff": access.is_platform_staff(user),
        "memberships": [
            {"tenant": tenant_id, "tenant_name": names.get(tenant_id, ""), "role": role}
            for tenant_id, role in sorted(roles.items(), key=lambda item: names.get(item[0], ""))
        ],
    }


class LoginView(APIView):
    """`POST /api/controller/auth`: a user's username and password -> a session.

    Exempt from CSRF (a JSON client has no token yet); the answer sets the `csrftoken` cookie
    and returns the token for later unsafe requests. Every attempt goes through
    `django.contrib.auth.authenticate`, so django-axes counts failures and locks out the
    username at that address, or the address (shared with the admin login; core/lockout.py),
    with 429 and Retry-After.
    A valid user who sees no tenant (neither platform staff nor a member) is refused exactly
    like a wrong password.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Log in as platform staff or a tenant member (session cookie valid 24 hours)",
        request=LoginSerializer,
        responses={
            200: LoginResultSerializer,
            **error_response("400"),
            **error_response("401", "Wrong credentials, or an account with no tenant access."),
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
        if user is None or not access.has_any_access(user):
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
    """`POST /api/controller/logout`: ends the session (CSRF protected), also for a user who
    has lost their tenant access meanwhile."""

    permission_classes = [IsLoggedIn]

    @extend_schema(summary="Log out", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    """`GET /api/controller/me`: the logged-in user, with their tenants and roles."""

    permission_classes = [IsSessionUser]

    @extend_schema(
        summary="The logged-in user, their tenants and roles", responses={200: StaffUserSerializer}
    )
    def get(self, request: Request) -> Response:
        return Response(_user_data(request.user))


__all__ = [
    "APIKeyViewSet",
    "InvitationViewSet",
    "MemberViewSet",
    "LoginView",
    "LogoutView",
    "MeView",
    "TenantViewSet",
]
