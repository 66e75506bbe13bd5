from typing import Any

from rest_framework import serializers

from conversations.models import ChatThread, Contact, Message, MessageAttachment, ThreadStatus
from conversations.services.stats import DEFAULT_DAYS, MAX_DAYS, MIN_DAYS
from core.api_fields import StrictBooleanField, StrictCharField, StrictModelSerializer


class ContactSerializer(StrictModelSerializer):
    """A contact with its decrypted name, phone, WhatsApp user id and Instagram-scoped id (for
    authorised clients only). A live contact has a phone and/or a WhatsApp user id, or (an
    Instagram channel's contact) an Instagram-scoped id alone."""

    class Meta:
        model = Contact
        fields = [
            "id",
            "external_id",
            "name",
            "phone",
            "wa_user_id",
            "ig_user_id",
            "opted_in_at",
            "opted_out_at",
            "erased_at",
            "created_at",
        ]
        read_only_fields = fields


class ThreadContactSerializer(StrictModelSerializer):
    class Meta:
        model = Contact
        fields = ["id", "name", "phone", "wa_user_id", "ig_user_id"]
        read_only_fields = fields


class ThreadSerializer(StrictModelSerializer):
    contact = ThreadContactSerializer(read_only=True)

    class Meta:
        model = ChatThread
        fields = [
            "id",
            "contact",
            "channel",
            "status",
            "needs_human",
            "handoff_reason",
            "last_activity_at",
            "last_inbound_at",
            "created_at",
        ]
        read_only_fields = fields


class ThreadUpdateSerializer(serializers.Serializer):
    openapi_request_extra = {"minProperties": 1, "additionalProperties": False}

    status = serializers.ChoiceField(choices=ThreadStatus.choices, required=False)
    needs_human = StrictBooleanField(
        required=False, help_text="false resumes automation; true pauses it for a human."
    )

    def to_internal_value(self, data: Any) -> dict:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: ["Unknown field: send `status` and/or `needs_human`."]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("Send `status` and/or `needs_human`.")
        return attrs


class AttachmentSerializer(StrictModelSerializer):
    class Meta:
        model = MessageAttachment
        fields = ["id", "media_type", "content_type", "url", "size_bytes"]
        read_only_fields = fields


class MessageSerializer(StrictModelSerializer):
    """A message with its kind and structured content. `content` is the decrypted content of
    a kind that has one (`location`, `contacts`, `flow_reply`, `reaction`, `order`) and the
    ad a message came from (`referral`); `{}` for a plain message."""

    attachments = AttachmentSerializer(many=True, read_only=True)
    content = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "direction",
            "sender",
            "kind",
            "text",
            "content",
            "status",
            "provider_message_id",
            "error_code",
            "attachments",
            "created_at",
        ]
        read_only_fields = fields

    def get_content(self, message: Message) -> dict[str, Any]:
        content = message.private_data
        if message.kind == "template":
            identity = (message.metadata or {}).get("template") or {}
            values = (content or {}).get("template_parameters") or []
            template = {key: identity.get(key, "") for key in ("name", "language", "content_sid")}
            return {"template": {**template, "parameters": [value for *_k, value in values]}}
        return content if isinstance(content, dict) else {}


class AgentMessageSerializer(serializers.Serializer):
    """Either a free-form `text` (only within the 24-hour window) or an approved `template`
    (any time)."""

    text = StrictCharField(max_length=4096, required=False, help_text="Sent as the agent.")
    template = serializers.JSONField(
        required=False,
        help_text="An approved template of the thread's channel: "
        '`{"name", "language", "parameters": [...]}` (Cloud API: one string per placeholder, '
        'header first) or `{"content_sid", "variables": {...}}` (Twilio).',
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("text" in attrs) == ("template" in attrs):
            raise serializers.ValidationError("Give either text or template.")
        if "template" in attrs and not isinstance(attrs["template"], dict):
            raise serializers.ValidationError({"template": "Must be an object."})
        return attrs


class ErasureSerializer(serializers.Serializer):
    dry_run = StrictBooleanField(
        default=False, help_text="Report what would be erased without changing anything."
    )


class ErasureReportSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField()
    dry_run = StrictBooleanField()
    contacts_redacted = serializers.IntegerField()
    messages_redacted = serializers.IntegerField()
    messages_cancelled = serializers.IntegerField()
    attachments_deleted = serializers.IntegerField()
    files_deleted = serializers.IntegerField()
    sessions_ended = serializers.IntegerField()
    threads_closed = serializers.IntegerField()
    notes_deleted = serializers.IntegerField()


class StatsQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=MIN_DAYS,
        max_value=MAX_DAYS,
        default=DEFAULT_DAYS,
        required=False,
        help_text=f"Days to cover, today included ({MIN_DAYS}..{MAX_DAYS}, "
        f"default {DEFAULT_DAYS}).",
    )


class DayCountSerializer(serializers.Serializer):
    date = serializers.DateField()
    inbound = serializers.IntegerField()
    outbound = serializers.IntegerField()


class ThreadCountSerializer(serializers.Serializer):
    open = serializers.IntegerField(help_text="Open threads, now.")
    needs_human = serializers.IntegerField(
        help_text="Open threads waiting for a human, now (the inbox's queue)."
    )
    oldest_waiting_since = serializers.DateTimeField(
        allow_null=True, help_text="When the longest wait in that queue began; null when none."
    )


class MessageTotalsSerializer(serializers.Serializer):
    inbound = serializers.IntegerField()
    outbound = serializers.IntegerField()


class FlowStatsSerializer(serializers.Serializer):
    flow_id = StrictCharField()
    name = StrictCharField()
    started = serializers.IntegerField(help_text="Sessions started in the period.")
    completed = serializers.IntegerField(
        help_text="Of those, reached an end of the flow without a handoff."
    )
    handed_off = serializers.IntegerField(help_text="Ended in a handoff node.")
    expired = serializers.IntegerField(help_text="Timed out (the contact went quiet).")
    failed = serializers.IntegerField(help_text="Stopped by an error.")
    interrupted = serializers.IntegerField(
        help_text="Ended by another flow's keyword, an opt-out or a human's takeover."
    )
    running = serializers.IntegerField(help_text="Still waiting for the contact's answer.")
    completion_rate = serializers.FloatField(
        allow_null=True, help_text="completed / started; null when nothing started."
    )
    ai_calls = serializers.IntegerField(help_text="AI node answers in the period.")
    ai_fallbacks = serializers.IntegerField(help_text="Of those, fell back (the model failed).")


class AIStatsSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    answered = serializers.IntegerField()
    fallbacks = serializers.IntegerField()


class HandoffStatsSerializer(serializers.Serializer):
    started = serializers.IntegerField(help_text="Waits for a human that began in the period.")
    answered = serializers.IntegerField(help_text="Of those, answered by a human.")
    median_first_reply_seconds = serializers.IntegerField(
        allow_null=True,
        help_text="Median time from the start of a wait to the first human reply; "
        "null when none was answered.",
    )


class FailedSendSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Our code or the provider's error code.")
    reason = serializers.CharField(help_text="What it means, in words.")
    count = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    messages = DayCountSerializer(many=True)
    message_totals = MessageTotalsSerializer()
    threads = ThreadCountSerializer()
    flows = FlowStatsSerializer(many=True)
    ai = AIStatsSerializer()
    handoffs = HandoffStatsSerializer()
    failed_sends = FailedSendSerializer(many=True)
