from typing import Any

from rest_framework import serializers

from channels_app.models import ChannelInstance
from core.api_fields import StrictBooleanField, StrictCharField, StrictModelSerializer
from flows.engine.reading import (
    MAX_FLOW_BYTES,
    FlowReadError,
    flow_json_from_bytes,
    flow_json_from_text,
)
from flows.models import Flow

MAX_FLOW_FILE_BYTES = MAX_FLOW_BYTES


class FlowSerializer(StrictModelSerializer):
    class Meta:
        model = Flow
        fields = [
            "id",
            "channel",
            "flow_id",
            "version",
            "name",
            "is_active",
            "definition",
            "created_at",
        ]
        read_only_fields = fields


class FlowActiveSerializer(StrictModelSerializer):
    """PATCH body of a flow: only `is_active` may change (activating deactivates the others)."""

    openapi_request_extra = {"required": ["is_active"]}

    class Meta:
        model = Flow
        fields = ["is_active"]
        extra_kwargs = {"is_active": {"required": True}}


class FlowDocumentSerializer(serializers.Serializer):
    """A flow document, as JSON (`definition`) or as an uploaded JSON file (`file`)."""

    definition = serializers.JSONField(
        required=False, help_text="The flow document (see the flow format)."
    )
    file = serializers.FileField(
        required=False, write_only=True, help_text="The flow document as a JSON file (multipart)."
    )

    def validate_file(self, upload: Any) -> Any:
        try:
            return flow_json_from_bytes(
                upload.read(MAX_FLOW_FILE_BYTES + 1), max_bytes=MAX_FLOW_FILE_BYTES
            )
        except FlowReadError as exc:
            raise serializers.ValidationError(f"The file {exc.reason}.") from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_definition = "definition" in attrs
        has_file = "file" in attrs
        if has_definition == has_file:
            raise serializers.ValidationError(
                {"definition": "Send the flow either as `definition` (JSON) or as a `file`."}
            )
        document = attrs.pop("file") if has_file else attrs.pop("definition")
        if isinstance(document, str) and not has_file:
            # Multipart forms carry `definition` as text.
            try:
                document = flow_json_from_text(document)
            except FlowReadError as exc:
                raise serializers.ValidationError({"definition": f"This {exc.reason}."}) from None
        attrs["document"] = document
        return attrs


class FlowCreateSerializer(FlowDocumentSerializer):
    channel = serializers.PrimaryKeyRelatedField(
        queryset=ChannelInstance.objects.none(), help_text="A channel of this tenant."
    )
    activate = StrictBooleanField(
        default=True, help_text="Make this version the active one of its flow_id."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenant = self.context.get("tenant")
        if tenant is not None:
            self.fields["channel"].queryset = ChannelInstance.objects.filter(tenant=tenant)


class FlowValidationResultSerializer(serializers.Serializer):
    valid = StrictBooleanField()
    flow_id = StrictCharField()
    name = StrictCharField()
