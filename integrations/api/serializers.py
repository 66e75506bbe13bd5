from rest_framework import serializers

from core.api_fields import StrictBooleanField, StrictCharField, StrictModelSerializer
from integrations.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent


class WebhookEndpointSerializer(StrictModelSerializer):
    """An endpoint of the tenant's own system. The signing secret is never shown here: only
    in the answer to its creation and to `rotate-secret`."""

    url = StrictCharField(
        max_length=2000,
        help_text="https URL on a public address (checked again at every send).",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        min_length=1,
        help_text="The events sent to this endpoint.",
    )
    is_active = StrictBooleanField(required=False)
    health = serializers.CharField(
        read_only=True,
        help_text="`new`, `healthy`, `failing`, `off`, or `switched off` (a day of failures).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "events",
            "is_active",
            "health",
            "failing_since",
            "last_success_at",
            "last_failure_at",
            "disabled_at",
            "disabled_reason",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "health",
            "failing_since",
            "last_success_at",
            "last_failure_at",
            "disabled_at",
            "disabled_reason",
            "created_at",
        ]
        extra_kwargs = {"description": {"required": False}}


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret (`whsec_...`), shown only in this answer.",
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="The new secret, shown only here.")


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "status_code",
            "error",
            "duration_ms",
            "response_snippet",
            "succeeded",
            "created_at",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    """One event sent to the endpoint, and every attempt made (oldest first). `error` is a
    short class (`timeout`, `connection`, `tls`, `http_status`, `redirect`, `dns`,
    `private_address`, ...), `response_snippet` at most the first 200 characters of the
    answer."""

    attempts = WebhookAttemptSerializer(many=True, read_only=True, source="attempt_log")
    attempt_count = serializers.IntegerField(read_only=True, source="attempts")

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event",
            "status",
            "attempt_count",
            "last_status_code",
            "last_error",
            "next_attempt_at",
            "give_up_at",
            "delivered_at",
            "created_at",
            "attempts",
        ]
        read_only_fields = fields
