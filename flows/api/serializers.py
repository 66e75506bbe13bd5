import json
from typing import Any

from rest_framework import serializers

from channels_app.models import ChannelInstance
from core.api_fields import StrictBooleanField, StrictCharField, StrictModelSerializer
from flows.models import Flow

MAX_FLOW_FILE_BYTES = 1024 * 1024


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
        if upload.size is not None and upload.size > MAX_FLOW_FILE_BYTES:
            raise serializers.ValidationError(
                f"The file is larger than {MAX_FLOW_FILE_BYTES // 1024} KiB."
            )
        raw = upload.read(MAX_FLOW_FILE_BYTES + 1)
        if len(raw) > MAX_FLOW_FILE_BYTES:
            raise serializers.ValidationError(
                f"The file is larger than {MAX_FLOW_FILE_BYTES // 1024} KiB."
            )
        try:
            return json.loads(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise serializers.ValidationError("The file is not UTF-8 text.") from None
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError(
                f"The file is not valid JSON (line {exc.lineno}, column {exc.colno})."
            ) from None
        except (ValueError, RecursionError):
            raise serializers.ValidationError(
                "The file's JSON cannot be read (nesting too deep or a number too long)."
            ) from None

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
                document = json.loads(document)
            except (ValueError, RecursionError):
                raise serializers.ValidationError({"definition": "Not valid JSON."}) from None
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
