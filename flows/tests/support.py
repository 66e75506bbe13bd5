"""Helpers for the Django-side flow tests (services, AI, admin, commands)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from conversations.models import ChatThread, Message, MessageStatus, Sender
from conversations.services.process import message_automate
from flows.services import Reply

EXAMPLES = Path(__file__).resolve().parents[2] / "flows" / "examples"
SHARED_EXAMPLES = Path("/work/shared/examples/flows")


def example(name: str) -> dict[str, Any]:
    """A copy of an example flow (from flows/examples/)."""
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def flow_doc(flow_id: str = "demo", *, nodes: list[dict] | None = None, **top: Any) -> dict:
    """A small valid flow: a question with two choices, each ending the flow."""
    doc: dict[str, Any] = {
        "schema_version": 1,
        "flow_id": flow_id,
        "name": f"Flow {flow_id}",
        "start": "ask",
        "nodes": nodes
        or [
            {
                "id": "ask",
                "type": "question",
                "text": f"[{flow_id}] Yes or no?",
                "choices": [
                    {"id": "yes", "label": "Yes", "next": "done_yes"},
                    {"id": "no", "label": "No", "next": "done_no"},
                ],
                "save_as": "answer",
            },
            {"id": "done_yes", "type": "end", "text": f"[{flow_id}] You said yes."},
            {"id": "done_no", "type": "end", "text": f"[{flow_id}] You said no."},
        ],
    }
    doc.update(copy.deepcopy(top))
    return doc


def receive(thread: ChatThread, text: str, *, interactive_id: str | None = None) -> list[Reply]:
    """Store an inbound message and run the automation on it the way the pipeline does
    (consent keywords, then the flow): in a transaction, holding the thread row lock, with a
    freshly loaded thread."""
    with transaction.atomic():
        locked = (
            ChatThread.objects.select_for_update()
            .select_related("contact", "tenant")
            .get(pk=thread.pk)
        )
        message = Message.objects.create(
            tenant_id=locked.tenant_id,
            thread=locked,
            channel_id=locked.channel_id,
            direction="inbound",
            text=text,
            status=MessageStatus.RECEIVED,
            sender=Sender.CONTACT,
            metadata={"interactive_id": interactive_id} if interactive_id else {},
        )
        replies = message_automate(thread=locked, message=message).replies
        for reply in replies:
            Message.objects.create(
                tenant_id=locked.tenant_id,
                thread=locked,
                channel_id=locked.channel_id,
                direction="outbound",
                text=reply.text,
                status=MessageStatus.QUEUED,
                sender=reply.sender,
            )
    return replies


def texts(replies: list[Reply]) -> list[str]:
    return [reply.text for reply in replies]


@pytest.fixture
def private_cache(settings):
    """A process-local cache, for query-count tests: a shared Redis may be flushed at any time
    by other test processes (the root conftest clears caches around every test)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "flows-private",
        }
    }
