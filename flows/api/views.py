from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import InvalidFlow
from core.api_base import UUID_PATTERN, error_response
from flows.api.filters import FlowFilter
from flows.api.serializers import (
    FlowActiveSerializer,
    FlowCreateSerializer,
    FlowDocumentSerializer,
    FlowSerializer,
    FlowValidationResultSerializer,
)
from flows.engine import FlowValidationError
from flows.models import Flow
from flows.services import flow_create, flow_set_active, flow_validate
from tenants.api_base import TenantScopedMixin, request_user

_INVALID_FLOW = error_response(
    "400",
    "`invalid_flow`: `details` lists every error with its JSON path "
    "(e.g. `nodes[3].choices[1].next`) and, when the path leads into a node with a valid id, "
    "that id as `node` (e.g. `ask_day`); `invalid` for a malformed request.",
)


def _issues(issues: Any) -> list[dict[str, str | None]]:
    return [{"path": issue.path, "node": issue.node, "message": issue.message} for issue in issues]


@extend_schema_view(
    list=extend_schema(summary="List flow versions"),
    retrieve=extend_schema(summary="A flow version"),
    create=extend_schema(
        summary="Upload a flow: a new version of its flow_id on the channel",
        request={
            "application/json": FlowCreateSerializer,
            "multipart/form-data": FlowCreateSerializer,
        },
        responses={201: FlowSerializer, **_INVALID_FLOW},
    ),
    partial_update=extend_schema(
        summary="Activate or deactivate a flow version",
        request=FlowActiveSerializer,
        responses={200: FlowSerializer},
    ),
    destroy=extend_schema(summary="Soft-delete a flow version (deactivated first)"),
)
class FlowViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Flow versions of the tenant's channels. Uploading an existing flow_id adds a version."""

    queryset = Flow.objects.order_by("flow_id", "-version", "id")
    serializer_class = FlowSerializer
    lookup_url_kwarg = "flow"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_class = FlowFilter

    def get_parsers(self) -> list:
        """JSON everywhere; uploading or validating a flow also takes a multipart `file`."""
        action = getattr(self, "action", None)
        if action is None and getattr(self, "request", None) is not None:
            action = self.action_map.get(self.request.method.lower())
        if action in ("create", "validate"):
            return [parsers.JSONParser(), parsers.MultiPartParser()]
        return [parsers.JSONParser()]

    def get_serializer_class(self) -> type:
        if self.action == "create":
            return FlowCreateSerializer
        if self.action == "validate":
            return FlowDocumentSerializer
        if self.action == "partial_update":
            return FlowActiveSerializer
        return FlowSerializer

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not isinstance(data["document"], dict):
            raise InvalidFlow([{"path": "", "message": "A flow must be a JSON object."}])
        try:
            flow = flow_create(
                tenant=self.tenant,
                channel=data["channel"],
                definition=data["document"],
                activate=data["activate"],
                created_by=request_user(request),
            )
        except FlowValidationError as exc:
            raise InvalidFlow(_issues(exc.issues)) from None
        return Response(FlowSerializer(flow).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        flow = self.get_object()
        serializer = FlowActiveSerializer(flow, data=request.data, partial=False)
        serializer.is_valid(raise_exception=True)
        flow = flow_set_active(flow=flow, is_active=serializer.validated_data["is_active"])
        return Response(FlowSerializer(flow).data)

    @transaction.atomic
    def perform_destroy(self, instance: Flow) -> None:
        if instance.is_active:
            flow_set_active(flow=instance, is_active=False)
        instance.soft_delete()

    @extend_schema(
        summary="Validate a flow document without storing it",
        request={
            "application/json": FlowDocumentSerializer,
            "multipart/form-data": FlowDocumentSerializer,
        },
        responses={200: FlowValidationResultSerializer, **_INVALID_FLOW},
    )
    @action(detail=False, methods=["post"])
    def validate(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = serializer.validated_data["document"]
        issues = flow_validate(definition=document)
        if issues:
            raise InvalidFlow(_issues(issues))
        return Response(
            {"valid": True, "flow_id": document["flow_id"], "name": document.get("name", "")}
        )
