from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.api.serializers import (
    ChannelSerializer,
    ChannelTemplateSerializer,
    TemplateSyncReportSerializer,
)
from channels_app.models import ChannelInstance, ChannelTemplate
from channels_app.services import (
    channel_create,
    channel_platform_settings_changed,
    channel_update,
)
from channels_app.templates import (
    SETUP_CODES,
    TemplateSyncError,
    channel_templates,
    channel_templates_sync,
)
from core.api import BadGateway, Conflict
from core.api_base import UUID_PATTERN, error_response
from tenants import access
from tenants.access import Action
from tenants.api_base import TenantScopedMixin


@extend_schema_view(
    list=extend_schema(summary="List the tenant's channels"),
    create=extend_schema(summary="Add a channel (secrets are write-only)"),
    retrieve=extend_schema(summary="A channel"),
    partial_update=extend_schema(summary="Update a channel; given secrets are merged in"),
    destroy=extend_schema(summary="Soft-delete a channel"),
)
class ChannelViewSet(TenantScopedMixin, viewsets.ModelViewSet):
    serializer_class = ChannelSerializer
    queryset = ChannelInstance.objects.order_by("identifier", "id")
    lookup_url_kwarg = "channel"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer: ChannelSerializer) -> None:
        self._check_staff_only_settings(serializer.validated_data.get("settings"), {})
        serializer.instance = channel_create(tenant=self.tenant, **serializer.validated_data)

    def perform_update(self, serializer: ChannelSerializer) -> None:
        data: dict[str, Any] = dict(serializer.validated_data)
        self._check_staff_only_settings(data.get("settings"), serializer.instance.settings or {})
        serializer.instance = channel_update(channel=serializer.instance, data=data)

    def _check_staff_only_settings(
        self, settings: dict[str, Any] | None, current: dict[str, Any]
    ) -> None:
        """Owners and keys may keep or remove a platform-only setting, not set or change one."""
        if access.can(self.request.user, Action.PLATFORM, self.tenant):
            return
        changed = channel_platform_settings_changed(settings=settings, current=current)
        if changed:
            raise ValidationError(
                {"settings": f"Only platform staff can set {', '.join(changed)}."}
            )

    def perform_destroy(self, instance: ChannelInstance) -> None:
        instance.soft_delete()


@extend_schema_view(
    get=extend_schema(
        summary="The channel's message templates as last synced (gone ones included)"
    ),
)
class ChannelTemplateListView(TenantScopedMixin, generics.ListAPIView):
    """`/channels/{channel}/templates/`: what the provider approved (or not) for the number."""

    serializer_class = ChannelTemplateSerializer
    queryset = ChannelTemplate.objects.all()

    def base_queryset(self) -> QuerySet:
        channel = self.tenant_parent(ChannelInstance.objects.all(), "channel")
        return channel_templates(channel=channel)


class ChannelTemplateSyncView(TenantScopedMixin, APIView):
    """`/channels/{channel}/templates/sync/`: ask the provider again, now."""

    write_action = Action.MANAGE

    @extend_schema(
        summary="Sync the channel's templates from the provider",
        request=None,
        responses={
            200: TemplateSyncReportSerializer,
            **error_response(
                "409",
                "`templates_unavailable`: the channel cannot list templates (no "
                "`business_account_id`, no credentials, a provider without templates).",
            ),
            **error_response(
                "502", "`provider_error`: the provider refused or failed; `provider_code`."
            ),
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        channel = self.tenant_parent(ChannelInstance.objects.all(), "channel")
        try:
            report = channel_templates_sync(channel=channel)
        except TemplateSyncError as exc:
            raise sync_error(exc) from None
        return Response(
            TemplateSyncReportSerializer(
                {**report.as_dict(), "templates": channel_templates(channel=channel).count()}
            ).data
        )


def sync_error(exc: TemplateSyncError) -> Conflict | BadGateway:
    """The API error of a failed sync: 409 for the channel's setup, else 502 with the
    provider's code and reason."""
    if exc.code in SETUP_CODES:
        return Conflict(str(exc), code="templates_unavailable")
    error = BadGateway(f"The provider refused the template sync: {exc}")
    error.extra = {"provider_code": exc.code}
    return error
