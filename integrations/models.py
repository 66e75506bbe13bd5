"""Webhooks to a tenant's own systems: its endpoints, each event sent to one, each attempt."""

from django.db import models
from django.db.models import Q

from core.fields import EncryptedJSONField, EncryptedTextField
from core.models import BaseModel


class WebhookEvent(models.TextChoices):
    MESSAGE_RECEIVED = "message.received", "A message arrived"
    MESSAGE_STATUS = "message.status", "An outbound message changed status"
    THREAD_HANDOFF = "thread.handoff", "A conversation waits for a human"
    THREAD_CLOSED = "thread.closed", "A conversation was closed"
    FLOW_COMPLETED = "flow.completed", "A flow session completed"
    CONTACT_OPTED_OUT = "contact.opted_out", "A contact opted out"
    CONTACT_OPTED_IN = "contact.opted_in", "A contact opted in"


class WebhookEndpoint(BaseModel):
    """A URL of the tenant's own system and the events it wants.

    `secret` (encrypted) signs every delivery; it is shown once, when created or rotated.
    `failing_since` is the time of the first failed attempt since the last success; an
    endpoint failing for `DISABLE_AFTER` is switched off (`is_active` false, with
    `disabled_at` and `disabled_reason`) until someone switches it on again.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True, default="")
    events = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    secret = EncryptedTextField(editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=500, blank=True, default="", editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "webhook endpoint"
        indexes = [
            models.Index(
                fields=["tenant"],
                condition=Q(is_active=True, deleted_at__isnull=True),
                name="webhook_endpoint_live_idx",
            )
        ]

    def __str__(self) -> str:
        return self.url

    @property
    def health(self) -> str:
        """ "switched off", "off", "failing", "healthy" or "new" (nothing sent yet)."""
        if self.disabled_at is not None and not self.is_active:
            return "switched off"
        if not self.is_active:
            return "off"
        if self.failing_since is not None:
            return "failing"
        return "healthy" if self.last_success_at else "new"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(BaseModel):
    """One event for one endpoint: the body is fixed when the event happens (`event_id`,
    `payload` = its `data`, encrypted: it may hold a message's text) and sent until a 2xx
    answer or until `give_up_at`. `next_attempt_at` is when it is due (also a lease while an
    attempt runs)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(editable=False)
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    occurred_at = models.DateTimeField()
    payload = EncryptedJSONField()
    # The contact the event is about, when it is about one: a contact's erasure empties the
    # payloads of their deliveries (a message's text is in them).
    contact_id = models.UUIDField(null=True, blank=True, db_index=True, editable=False)
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=64, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_due_idx",
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_ep_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.event_id}"


class WebhookAttempt(BaseModel):
    """One HTTP attempt of a delivery: what came back, never more than a short snippet of
    the answer's body, never the secret."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=64, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    response_snippet = models.CharField(max_length=200, blank=True, default="")
    succeeded = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = "webhook attempt"
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_uniq")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}"
