from django.core.validators import RegexValidator
from rest_framework import serializers

from channels_app.models import ChannelInstance, ChannelTemplate, ChannelType
from channels_app.providers.registry import provider_choices
from channels_app.services import E164
from core.api_fields import StrictBooleanField, StrictCharField, StrictModelSerializer

IDENTIFIER_MESSAGE = (
    "Must be 'whatsapp:' followed by the phone number (an Instagram channel: 'instagram:' "
    "followed by the account ID)."
)


class ChannelSerializer(StrictModelSerializer):
    """A channel. `secrets` are write-only: answers only say `has_secrets`."""

    channel_type = serializers.ChoiceField(
        choices=ChannelType.choices,
        required=False,
        help_text="The provider's (whatsapp; instagram for the instagram provider).",
    )
    provider = serializers.ChoiceField(
        choices=[],
        help_text="The code of an installed provider.",  # set in __init__
    )
    identifier = StrictCharField(
        max_length=100,
        required=False,
        trim_whitespace=False,
        validators=[
            RegexValidator(
                r"^(whatsapp:\+[1-9]\d{6,14}|instagram:[0-9]{1,64})$", message=IDENTIFIER_MESSAGE
            )
        ],
        help_text="`whatsapp:` followed by `phone_number` (the default); an Instagram "
        "channel's is `instagram:` followed by `settings.instagram_account_id`.",
    )
    phone_number = StrictCharField(
        max_length=20,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        validators=[RegexValidator(E164, message="Must be an E.164 number such as +14155238886.")],
        help_text="E.164, e.g. +14155238886 (required for WhatsApp; none for Instagram).",
    )
    settings = serializers.DictField(required=False, help_text="Non-secret provider settings.")
    secrets = serializers.DictField(
        child=StrictCharField(allow_blank=True, max_length=2000, trim_whitespace=True),
        required=False,
        write_only=True,
        help_text="Provider credentials; never returned. On PATCH, an empty value removes one.",
    )
    has_secrets = StrictBooleanField(read_only=True)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["provider"].choices = provider_choices()  # the installed ones, now

    class Meta:
        model = ChannelInstance
        fields = [
            "id",
            "channel_type",
            "provider",
            "identifier",
            "phone_number",
            "settings",
            "secrets",
            "is_active",
            "has_secrets",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"is_active": {"required": False}}


class ChannelTemplateSerializer(serializers.ModelSerializer):
    """A template as last synced. `sendable`: approved and still listed by the provider.
    `parameters`: the placeholders a send fills, in order."""

    sendable = serializers.BooleanField(read_only=True)

    class Meta:
        model = ChannelTemplate
        fields = [
            "id",
            "name",
            "language",
            "category",
            "status",
            "sendable",
            "content_sid",
            "body",
            "components",
            "parameters",
            "named",
            "rejection_reason",
            "synced_at",
            "gone_at",
        ]
        read_only_fields = fields


class TemplateSyncReportSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    gone = serializers.IntegerField()
    templates = serializers.IntegerField(help_text="The channel's templates now, gone included.")
