from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from channels_app.api.serializers import ChannelSerializer
from channels_app.models import ChannelInstance
from channels_app.services import (
    channel_create,
    channel_platform_settings_changed,
    channel_update,
)
from core.api_base import UUID_PATTERN
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
