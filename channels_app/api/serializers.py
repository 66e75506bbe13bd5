from rest_framework import serializers

from channels_app.models import ChannelInstance, ChannelType, Provider


class ChannelSerializer(serializers.ModelSerializer):
    """A channel. `secrets` are write-only: answers only say `has_secrets`."""

    channel_type = serializers.ChoiceField(
        choices=ChannelType.choices, default=ChannelType.WHATSAPP
    )
    provider = serializers.ChoiceField(choices=Provider.choices)
    identifier = serializers.CharField(
        max_length=100, required=False, help_text="Defaults to `whatsapp:<phone_number>`."
    )
    settings = serializers.DictField(required=False, help_text="Non-secret provider settings.")
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=2000, trim_whitespace=True),
        required=False,
        write_only=True,
        help_text="Provider credentials; never returned. On PATCH, an empty value removes one.",
    )
    has_secrets = serializers.BooleanField(read_only=True)

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
