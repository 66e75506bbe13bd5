"""Past traffic for the demo (`seed_demo --history DAYS`): contacts who went through the demo
flow on earlier days, so the dashboard's chart and the flow diagram's counts have something to
show from the first `make run`.

Every conversation is played through the real pipeline (the sandbox provider: stored,
processed by the flow, replies sent and ticked), a person answers some of the handoffs and
closes most of them, timers fire; only then are the conversation's rows moved back to their
day, every timestamp by the same amount. Deterministic (a fixed seed): the same history on
every machine. Demo data only: nothing here runs outside `seed_demo`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import models
from django.db.models import F
from django.utils import timezone

from channels_app.models import ChannelInstance
from channels_app.providers import ParsedInbound
from conversations.models import ChatThread, Contact, Handoff, Message, ThreadNote, ThreadStatus
from conversations.services.inbound import message_receive
from conversations.services.outbound import message_send_agent
from conversations.services.process import flow_expire_stale_sessions, flow_fire_due_timeouts
from conversations.services.threads import thread_update
from flows.models import FlowEvent, FlowSession

FIRST_NAMES = (
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Grace", "Hugo", "Isabel", "João",
    "Kai", "Lucía", "Mateo", "Nina", "Omar", "Paula", "Rafael", "Sofia", "Tomás", "Yara",
)  # fmt: skip


@dataclass(frozen=True)
class Script:
    """What one contact writes (``{day}``: a date a week after the visit, ``{email}``: an
    address), and what happens after."""

    weight: int
    lines: tuple[str, ...]
    then: str = ""  # "timeout": no reply, the question times out; "agent": a person answers


SCRIPTS = (
    Script(30, ("hi", "trial", "{day}", "{email}")),
    Script(10, ("hello", "prices", "yes", "{day}", "{email}")),
    Script(10, ("hi", "prices", "no")),
    Script(8, ("hi", "prices")),  # never answers: the session expires at after_prices
    Script(8, ("hi",), then="timeout"),
    Script(8, ("menu", "trial")),  # never gives a day: expires at ask_day
    Script(6, ("hi", "trial", "tomorrow", "next week", "2099-13-45")),  # to a person
    Script(12, ("hi", "other", "Do you have yoga classes on Sundays?"), then="agent"),
)
STALE_AFTER = timedelta(hours=25)  # the demo flow's session timeout is a day
AGENT_REPLY = "Hi! Yes, yoga on Sundays at 10am. Want me to book you a spot?"


def _shift(model: type[models.Model], queryset: models.QuerySet, offset: timedelta) -> None:
    """Move every timestamp of these rows back by `offset` (nulls stay null)."""
    fields = [
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, models.DateTimeField) and field.name != "deleted_at"
    ]
    queryset.update(**{name: F(name) - offset for name in fields})


def _move_back(thread: ChatThread, offset: timedelta) -> None:
    session_ids = list(FlowSession.all_objects.filter(thread=thread).values_list("pk", flat=True))
    _shift(Message, Message.all_objects.filter(thread=thread), offset)
    _shift(ThreadNote, ThreadNote.objects.filter(thread=thread), offset)
    _shift(Handoff, Handoff.objects.filter(thread=thread), offset)
    _shift(FlowEvent, FlowEvent.objects.filter(session_id__in=session_ids), offset)
    _shift(FlowSession, FlowSession.all_objects.filter(pk__in=session_ids), offset)
    _shift(ChatThread, ChatThread.all_objects.filter(pk=thread.pk), offset)
    _shift(Contact, Contact.all_objects.filter(pk=thread.contact_id), offset)


def _answer_later(thread: ChatThread, reply: Message, delay: timedelta) -> None:
    """The person's answer came `delay` after the handoff (played, it came at once)."""
    _shift(Message, Message.all_objects.filter(pk=reply.pk), -delay)
    Handoff.objects.filter(thread=thread).update(
        first_reply_at=F("first_reply_at") + delay, ended_at=F("ended_at") + delay
    )


def history_exists(channel: ChannelInstance, now: datetime) -> bool:
    """Whether the channel already has messages older than two days (an earlier history)."""
    return Message.all_objects.filter(
        channel=channel, created_at__lt=now - timedelta(days=2)
    ).exists()


def demo_history_seed(*, channel: ChannelInstance, days: int, seed: int = 2026) -> int:
    """Play `days` days of contacts (3 to 9 a day, more on weekdays) through the channel's
    flow and move each conversation back to its day; return how many conversations.

    Requires a sandbox channel and in-process tasks (seed_demo sets both up). A person
    answers most handoffs (a few minutes later) and closes those older than two days; the
    last two days' stay open, so the inbox has a queue.
    """
    rng = random.Random(seed)
    now = timezone.now()
    played = 0
    for days_ago in range(days, 0, -1):
        day = now - timedelta(days=days_ago)
        visitors = rng.randint(3, 6) + (3 if day.weekday() < 5 else 0)
        for number in range(visitors):
            script = rng.choices(SCRIPTS, weights=[s.weight for s in SCRIPTS])[0]
            at = day.replace(hour=rng.randint(8, 20), minute=rng.randint(0, 59))
            thread, reply = _play(channel, script, f"{days_ago:03d}{number:02d}", at, rng)
            if thread is None:
                continue
            thread.refresh_from_db()
            if thread.needs_human and days_ago > 2:
                thread_update(thread=thread, status=ThreadStatus.CLOSED)
            _move_back(thread, now - at)
            if reply is not None:
                _answer_later(thread, reply, timedelta(minutes=rng.randint(2, 45)))
            if at + STALE_AFTER < now:
                # A silence expires when the stale job would have seen it, a day later.
                flow_expire_stale_sessions(now=at + STALE_AFTER)
            played += 1
    return played


def _play(
    channel: ChannelInstance, script: Script, key: str, at: datetime, rng: random.Random
) -> tuple[ChatThread | None, Message | None]:
    """The contact's messages received one by one; returns the thread and the person's
    reply, when one answered."""
    name = f"{rng.choice(FIRST_NAMES)} {chr(65 + rng.randrange(26))}."
    phone = f"+1555030{key}"
    thread = None
    for index, line in enumerate(script.lines):
        text = line.format(
            day=(at + timedelta(days=7)).date().isoformat(), email=f"guest{key}@example.com"
        )
        message, _new = message_receive(
            channel=channel,
            inbound=ParsedInbound(
                provider_message_id=f"SBXhist-{key}-{index}",
                from_phone=phone,
                profile_name=name,
                wa_id=phone.lstrip("+"),
                text=text,
                timestamp=timezone.now(),
            ),
        )
        thread = message.thread
    if thread is None:
        return None, None
    if script.then == "timeout":
        flow_fire_due_timeouts(now=timezone.now() + timedelta(hours=2), expire_stale=False)
    thread.refresh_from_db()
    if thread.needs_human and (script.then == "agent" or rng.random() < 0.7):
        return thread, message_send_agent(thread=thread, text=AGENT_REPLY)
    return thread, None
