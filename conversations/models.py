from django.conf import settings
from django.db import models
from django.db.models import Q

from core.crypto import name_index
from core.fields import EncryptedJSONField, EncryptedTextField, ProviderIdField
from core.models import BaseModel


class NameIndexField(models.TextField):
    """The blind index of the words of the instance's `name` (`core.crypto.name_index`),
    computed whenever the row is saved with it, so a name can be searched by whole words
    without ever being stored or compared in clear. Writes that bypass `save()` (queryset
    `update`) must set it with `name_index(...)` themselves."""

    def __init__(self, *args: object, source: str = "name", **kwargs: object) -> None:
        self.source = source
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def deconstruct(self):  # type: ignore[no-untyped-def]
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        if self.source != "name":
            kwargs["source"] = self.source
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = name_index(getattr(model_instance, self.source) or "")
        setattr(model_instance, self.attname, value)
        return value


def phone_tail(phone: str) -> str:
    """A phone as its last four digits only: `+5511988887777` -> `…7777`."""
    return "…" + phone[-4:] if phone else ""


class Contact(BaseModel):
    """A person writing to a tenant, known by a phone number, a WhatsApp user id (a
    business-scoped user id, for people who hide their number behind a username), or both.

    Phone, user id and name are encrypted; `phone_lookup` and `wa_user_lookup` are the HMAC
    blind indexes used to find the contact by either (both cleared on erasure). Each is unique
    among a tenant's live contacts, so one person is one contact.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="contacts")
    external_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    phone = EncryptedTextField(blank=True, default="")
    name = EncryptedTextField(blank=True, default="")
    # Keyed hashes of the name's words, for the inbox's name search (see NameIndexField).
    name_index = NameIndexField()
    # NULL (not "") after erasure, so the partial unique constraint ignores erased contacts.
    phone_lookup = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, editable=False
    )
    # The WhatsApp business-scoped user id (`US.1234…`), encrypted, and its blind index (NULL
    # when unknown or erased, like phone_lookup).
    wa_user_id = EncryptedTextField(blank=True, default="")
    wa_user_lookup = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, editable=False
    )
    # The Instagram-scoped user id (IGSID) of a person writing to an Instagram channel,
    # encrypted, and its blind index (its own index space, so never a phone's or a WhatsApp
    # id's). A contact known by one never has a phone or a WhatsApp id: Instagram contacts
    # and WhatsApp contacts are never the same row.
    ig_user_id = EncryptedTextField(blank=True, default="")
    ig_user_lookup = models.CharField(  # noqa: DJ001
        max_length=64, null=True, blank=True, editable=False
    )
    opted_in_at = models.DateTimeField(null=True, blank=True)
    opt_in_source = models.CharField(max_length=50, blank=True, default="")
    opted_out_at = models.DateTimeField(null=True, blank=True)
    # Who recorded the opt-out: "keyword" (the contact wrote it), "provider:<code>" (the
    # provider refused a send because the recipient unsubscribed, e.g. Twilio 21610).
    opt_out_source = models.CharField(max_length=50, blank=True, default="")
    erasure_requested_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "phone_lookup"],
                condition=Q(deleted_at__isnull=True, phone_lookup__isnull=False),
                name="contact_tenant_phone_lookup_live_uniq",
            ),
            models.UniqueConstraint(
                fields=["tenant", "wa_user_lookup"],
                condition=Q(deleted_at__isnull=True, wa_user_lookup__isnull=False),
                name="contact_tenant_wa_user_lookup_live_uniq",
            ),
            models.UniqueConstraint(
                fields=["tenant", "ig_user_lookup"],
                condition=Q(deleted_at__isnull=True, ig_user_lookup__isnull=False),
                name="contact_tenant_ig_user_lookup_live_uniq",
            ),
        ]

    def __str__(self) -> str:
        """`Maria Silva · whatsapp …7777`: the name and the phone's last four digits.

        Never queries (a deferred name or phone is left out rather than loaded) and never
        decrypts (the fields are decrypted once, when the row is read). Falls back to the
        id's first block for a contact with neither, e.g. after erasure. Shown in the admin,
        never written to logs (log lines carry ids only)."""
        deferred = self.get_deferred_fields()
        name = "" if "name" in deferred else self.name
        phone = "" if "phone" in deferred else self.phone
        user_id = "" if "wa_user_id" in deferred else self.wa_user_id
        ig_user_id = "" if "ig_user_id" in deferred else self.ig_user_id
        parts = [name.strip()] if name.strip() else []
        if phone:
            parts.append(f"whatsapp {phone_tail(phone)}")
        elif user_id:
            parts.append(f"whatsapp user {phone_tail(user_id)}")
        elif ig_user_id:
            parts.append(f"instagram user {phone_tail(ig_user_id)}")
        if not parts:
            erased = "erased_at" not in deferred and self.erased_at is not None
            label = "Erased contact" if erased else "Contact"
            return f"{label} {str(self.pk)[:8]}"
        return " · ".join(parts)

    @property
    def address(self) -> str:
        """How the contact can be reached: the phone, else the WhatsApp user id, else the
        Instagram-scoped id ('' if none)."""
        return self.phone or self.wa_user_id or self.ig_user_id or ""

    @property
    def is_opted_out(self) -> bool:
        return self.opted_out_at is not None and (
            self.opted_in_at is None or self.opted_out_at > self.opted_in_at
        )


class ThreadStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"
    ARCHIVED = "archived", "Archived"


class ChatThread(BaseModel):
    """The conversation of one contact on one channel (one live thread per pair)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="threads")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="threads")
    channel = models.ForeignKey(
        "channels_app.ChannelInstance", on_delete=models.CASCADE, related_name="threads"
    )
    status = models.CharField(
        max_length=10, choices=ThreadStatus.choices, default=ThreadStatus.OPEN
    )
    needs_human = models.BooleanField(default=False)
    handoff_reason = models.CharField(max_length=500, blank=True, default="")
    last_activity_at = models.DateTimeField(null=True, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    # The staff member answering it (Chatwoot's assignee); None: unassigned.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_threads",
    )
    # When someone who may answer last opened the conversation: inbound messages after it are
    # unread.
    agent_last_seen_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-last_activity_at"]
        verbose_name = "thread"
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "channel"],
                condition=Q(deleted_at__isnull=True),
                name="thread_contact_channel_live_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "needs_human"], name="thread_inbox_idx"),
            models.Index(fields=["tenant", "-last_activity_at"], name="thread_activity_idx"),
            models.Index(fields=["tenant", "updated_at"], name="thread_updated_idx"),
            models.Index(fields=["tenant", "assigned_to"], name="thread_assignee_idx"),
        ]

    def __str__(self) -> str:
        """`Conversation with Maria Silva · whatsapp …7777`, when the contact is loaded with
        it (never a query of its own); else the id's first block."""
        if ChatThread.contact.is_cached(self):
            return f"Conversation with {self.contact}"
        return f"Conversation {str(self.pk)[:8]}"


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class MessageStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed"


class Sender(models.TextChoices):
    CONTACT = "contact", "Contact"
    FLOW = "flow", "Flow"
    AI = "ai", "AI"
    AGENT = "agent", "Agent"
    # A message the business sent from the WhatsApp Business app on the same number
    # (coexistence), reported to us as an echo.
    BUSINESS = "business", "Business app"


class Message(BaseModel):
    """One WhatsApp message in a thread; `text` is encrypted.

    `channel` is denormalised from the thread so that a provider message id is unique per
    channel, which makes duplicate webhook deliveries hit a constraint instead of a second row.
    """

    # No single-column indexes on tenant and thread: the (tenant, created_at) and (thread,
    # created_at) indexes below serve those lookups, and every message insert would maintain
    # two more indexes for nothing.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    thread = models.ForeignKey(
        ChatThread, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    channel = models.ForeignKey(
        "channels_app.ChannelInstance", on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=10, choices=Direction.choices)
    kind = models.CharField(max_length=20, default="text")
    text = EncryptedTextField(blank=True, default="")
    # Personal content other than the text (a shared location), encrypted like the text.
    private_data = EncryptedJSONField()
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    # NULL until the provider accepts the message; unique per channel when set.
    # Stored pseudonymised for WhatsApp (a wamid holds the phone number): see ProviderIdField.
    provider_message_id = ProviderIdField(max_length=128, null=True, blank=True)  # noqa: DJ001
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_detail = models.CharField(max_length=1000, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    sender = models.CharField(max_length=10, choices=Sender.choices)
    sent_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    processed_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    # Set while an attempt to send is in flight (claimed, the provider not answered yet): an
    # attempt that never finished may have reached the provider, so it is never repeated.
    sending_since = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_message_id"],
                condition=Q(provider_message_id__isnull=False),
                name="message_channel_provider_id_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["thread", "created_at"], name="message_thread_created_idx"),
            models.Index(fields=["tenant", "created_at"], name="message_tenant_created_idx"),
            models.Index(
                fields=["thread", "created_at"],
                condition=Q(direction="inbound", processed_at__isnull=True),
                name="message_unprocessed_idx",
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(direction="outbound", status="queued"),
                name="message_queued_idx",
            ),
        ]

    def __str__(self) -> str:
        """`Inbound text, 2 Dec 16:39` (never the text itself: the admin shows it apart)."""
        kind = self.kind.replace("_", " ")
        return f"{self.get_direction_display()} {kind}, {self.created_at:%d %b %H:%M}"


class MessageAttachment(BaseModel):
    """Media of a message. `url` is the provider's (it expires); `file` is our stored copy."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    media_type = models.CharField(max_length=20)  # image, audio, video, document, sticker
    content_type = models.CharField(max_length=100, blank=True, default="")
    url = models.URLField(max_length=2000, blank=True, default="")
    provider_media_id = models.CharField(max_length=128, blank=True, default="")
    file = models.FileField(upload_to="attachments/%Y/%m/", null=True, blank=True, max_length=500)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    download_status = models.CharField(max_length=10, default="pending")  # pending/stored/failed
    download_attempts = models.PositiveSmallIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "attachment"

    def __str__(self) -> str:
        return f"{self.media_type} attachment {self.pk}"


class ThreadNote(BaseModel):
    """A private note staff leave on a conversation. It is never sent: it lives outside the
    message pipeline altogether. The text is encrypted like a message's."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = EncryptedTextField()

    class Meta:
        ordering = ["created_at"]
        verbose_name = "note"
        indexes = [models.Index(fields=["thread", "created_at"], name="note_thread_created_idx")]

    def __str__(self) -> str:
        return f"Note on {self.thread_id}"


class HandoffSource(models.TextChoices):
    FLOW = "flow", "A flow's handoff node"
    AGENT = "agent", "A staff takeover"


class Handoff(BaseModel):
    """One wait of a conversation for a human: from the moment it starts waiting
    (`needs_human` set by a flow's handoff node or a staff takeover) to the first human reply
    (`first_reply_at`) and to its end (`ended_at`: automation resumed, or the thread closed).

    At most one open (`ended_at` NULL) handoff per thread, enforced by a constraint. Holds no
    personal data: times, the source and the flow version that handed off. Written only by
    `conversations.services.handoffs`, under the thread's row lock; read by the dashboard and
    the stats API (median time to first human reply, the oldest wait in the queue).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey(ChatThread, on_delete=models.CASCADE, related_name="handoffs")
    source = models.CharField(max_length=10, choices=HandoffSource.choices)
    flow = models.ForeignKey(
        "flows.Flow", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    first_reply_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(ended_at__isnull=True, deleted_at__isnull=True),
                name="handoff_one_open_per_thread",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "started_at"], name="handoff_tenant_started_idx"),
            models.Index(
                fields=["tenant", "started_at"],
                condition=Q(ended_at__isnull=True),
                name="handoff_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Handoff ({self.get_source_display().lower()}) {self.started_at:%d %b %H:%M}"
