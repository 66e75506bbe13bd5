from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import Conflict
from core.api_base import UUID_PATTERN, error_response
from integrations.api.serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
    WebhookSecretSerializer,
)
from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.services import (
    ReplayRefused,
    delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from tenants.access import Action
from tenants.api_base import TenantScopedMixin


@extend_schema_view(
    list=extend_schema(summary="List the tenant's webhook endpoints (owners and keys)"),
    create=extend_schema(
        summary="Register a webhook endpoint; the answer holds its signing secret, once",
        request=WebhookEndpointSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
    ),
    retrieve=extend_schema(summary="A webhook endpoint and its health"),
    partial_update=extend_schema(
        summary="Change an endpoint (`is_active: true` switches a switched-off one on again)"
    ),
    destroy=extend_schema(summary="Delete an endpoint (its pending deliveries are given up)"),
)
class WebhookEndpointViewSet(TenantScopedMixin, viewsets.ModelViewSet):
    """Webhooks to the tenant's own systems. Endpoint URLs and their deliveries are the
    tenant's integration settings: owners, platform staff and the tenant's API keys (MANAGE)
    read and change them; agents and viewers get 403."""

    read_action = write_action = Action.MANAGE
    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.order_by("created_at", "id")
    lookup_url_kwarg = "webhook"
    lookup_value_regex = UUID_PATTERN
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint, secret = webhook_endpoint_create(tenant=self.tenant, **serializer.validated_data)
        endpoint.secret = secret
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )

    def perform_update(self, serializer: WebhookEndpointSerializer) -> None:
        serializer.instance = webhook_endpoint_update(
            endpoint=serializer.instance, data=dict(serializer.validated_data)
        )

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=instance)

    @extend_schema(
        summary="Replace the endpoint's signing secret; the answer holds the new one, once",
        request=None,
        responses={200: WebhookSecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        secret = webhook_endpoint_rotate_secret(endpoint=self.get_object())
        return Response({"secret": secret})


@extend_schema_view(
    list=extend_schema(summary="The endpoint's deliveries, newest first, with every attempt"),
    retrieve=extend_schema(summary="A delivery and its attempts"),
)
class WebhookDeliveryViewSet(
    TenantScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    read_action = write_action = Action.MANAGE
    serializer_class = WebhookDeliverySerializer
    queryset = WebhookDelivery.objects.all()
    lookup_url_kwarg = "delivery"
    lookup_value_regex = UUID_PATTERN

    def base_queryset(self) -> QuerySet:
        endpoint = self.tenant_parent(WebhookEndpoint.objects.all(), "webhook")
        return (
            super()
            .base_queryset()
            .filter(endpoint=endpoint)
            .order_by("-created_at", "-id")
            .prefetch_related(
                Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("number"))
            )
        )

    @extend_schema(
        summary="Send the delivery again now (same event id, new signature, 24 hours of retries)",
        request=None,
        responses={202: WebhookDeliverySerializer, **error_response("409")},
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        delivery = self.get_object()
        try:
            delivery = delivery_replay(delivery=delivery)
        except ReplayRefused as exc:
            raise Conflict(str(exc)) from exc
        delivery = self.get_queryset().get(pk=delivery.pk)
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)
