from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.fields import EncryptedJSONField
from core.models import BaseModel


class TriggerMatch(models.TextChoices):
    FIRST_WORD = "first_word", "First word"
    ONLY_WORD = "only_word", "Only word"


class Flow(BaseModel):
    """One version of a flow on a channel. Uploading an existing `flow_id` adds a version.

    The trigger fields are copied from the definition so that flow selection reads a few
    columns instead of every definition. At most one version per (channel, flow_id) is active.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="flows")
    channel = models.ForeignKey(
        "channels_app.ChannelInstance", on_delete=models.CASCADE, related_name="flows"
    )
    flow_id = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    definition = models.JSONField()
    is_active = models.BooleanField(default=False)
    trigger_keywords = models.JSONField(default=list, blank=True)
    trigger_match = models.CharField(
        max_length=12, choices=TriggerMatch.choices, default=TriggerMatch.FIRST_WORD
    )
    is_default = models.BooleanField(default=False)
    weight = models.PositiveSmallIntegerField(default=100)
    ignore_keywords = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["flow_id", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "flow_id", "version"], name="flow_channel_flow_version_uniq"
            ),
            models.UniqueConstraint(
                fields=["channel", "flow_id"],
                condition=Q(is_active=True, deleted_at__isnull=True),
                name="flow_one_active_version",
            ),
        ]
        indexes = [
            models.Index(
                fields=["channel"],
                condition=Q(is_active=True, deleted_at__isnull=True),
                name="flow_active_by_channel_idx",
            ),
            models.Index(fields=["tenant", "flow_id"], name="flow_tenant_flow_id_idx"),
        ]

    def __str__(self) -> str:
        """`Welcome v3` (the flow's name, else its id, and the version)."""
        return f"{self.name or self.flow_id} v{self.version}"


class SessionStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


class FlowSession(BaseModel):
    """A run of one flow version in a thread. At most one waiting session per thread.

    `wait_seq` identifies the current wait: a timeout fires only for the wait it was set for.
    `wait_expires_at` is the node timeout of the current wait (question/input with `timeout`);
    `stale_at` is when a wait without a node timeout passes the flow's
    `session_timeout_seconds` (both indexed so the periodic job finds due sessions directly).
    `handed_off` records that the session ended in a handoff node (for stats).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    thread = models.ForeignKey(
        "conversations.ChatThread", on_delete=models.CASCADE, related_name="flow_sessions"
    )
    flow = models.ForeignKey(Flow, on_delete=models.PROTECT, related_name="sessions")
    status = models.CharField(max_length=12, choices=SessionStatus.choices)
    current_node = models.CharField(max_length=64, blank=True, default="")
    # What the contact answered (emails, dates, free text) and AI answers: personal data,
    # encrypted like the message texts.
    variables = EncryptedJSONField()
    retries = models.PositiveSmallIntegerField(default=0)
    ai_turns = models.PositiveSmallIntegerField(default=0)
    wait_seq = models.PositiveIntegerField(default=0)
    waiting_since = models.DateTimeField(null=True, blank=True)
    wait_expires_at = models.DateTimeField(null=True, blank=True)
    stale_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    handed_off = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "flow session"
        constraints = [
            models.UniqueConstraint(
                fields=["thread"],
                condition=Q(status="waiting", deleted_at__isnull=True),
                name="flow_session_one_waiting_per_thread",
            )
        ]
        indexes = [
            models.Index(
                fields=["wait_expires_at"],
                condition=Q(status="waiting"),
                name="flow_session_due_idx",
            ),
            models.Index(
                fields=["waiting_since"],
                condition=Q(status="waiting"),
                name="flow_session_waiting_idx",
            ),
            models.Index(
                fields=["stale_at"],
                condition=Q(status="waiting"),
                name="flow_session_stale_idx",
            ),
            models.Index(fields=["tenant", "created_at"], name="flow_session_tenant_idx"),
        ]

    def __str__(self) -> str:
        """`Welcome v3 · waiting · 2026-03-12 14:05` (started). The flow's name only when the
        flow is loaded already (`select_related`): never a query of its own."""
        started = (
            f" · {timezone.localtime(self.created_at):%Y-%m-%d %H:%M}" if self.created_at else ""
        )
        flow = str(self.flow) if FlowSession.flow.is_cached(self) else "Flow session"
        return f"{flow} · {self.get_status_display().lower()}{started}"


class FlowEventKind(models.TextChoices):
    ENTERED = "entered", "entered a node"
    EXITED = "exited", "left a node"
    COMPLETED = "completed", "completed"
    HANDED_OFF = "handed_off", "handed off"
    EXPIRED = "expired", "expired"
    FAILED = "failed", "failed"
    INTERRUPTED = "interrupted", "interrupted"
    AI_ANSWERED = "ai_answered", "AI answered"
    AI_FALLBACK = "ai_fallback", "AI fell back"


class FlowEvent(models.Model):
    """One step of a session's route (entered a node, left it by an exit) or its outcome, kept
    per flow version: the flow diagram's counts and the dashboard's flow and AI numbers.

    Holds no personal data: node ids and exit keys come from the flow definition, and
    `session_id` is a plain UUID rather than a foreign key, so the counts outlive a session
    deleted by erasure or purge (they are anonymous aggregates by then). Append-only, written
    in bulk by `flows.services` in the step's transaction.
    """

    id = models.BigAutoField(primary_key=True)
    # No single-column indexes: the composite ones below lead with these columns, and this
    # append-only table is written on every flow step.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="events", db_index=False)
    session_id = models.UUIDField()
    kind = models.CharField(max_length=12, choices=FlowEventKind.choices)
    node_id = models.CharField(max_length=64)
    # The exit key of `flows.engine.graph.node_exits` ("next", "choice:<id>", "timeout", ...).
    exit = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["flow", "created_at"], name="flow_event_flow_time_idx"),
            models.Index(fields=["tenant", "created_at"], name="flow_event_tenant_time_idx"),
        ]

    def __str__(self) -> str:
        where = f"{self.node_id} → {self.exit}" if self.exit else self.node_id
        return f"{self.get_kind_display()} · {where}"
