"""Template messages: an approved template, its placeholders filled, queued like any reply.

WhatsApp accepts only approved templates once the contact's last message is more than 24
hours old. A template message is an outbound `Message` of kind `template`: its `text` is the
template rendered with the values (encrypted, for the inbox and the API), the values
themselves are in the encrypted `private_data`, and `metadata["template"]` names the template
(name, language, Content SID: no personal data). `template_payload` turns it into the
provider-neutral `TemplateMessage` that `Provider.send_template` sends.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from channels_app.models import ChannelInstance, ChannelTemplate
from channels_app.providers import get_provider
from channels_app.providers.base import TemplateMessage
from channels_app.templates import sendable_templates
from conversations.models import ChatThread, Direction, Message, MessageStatus, Sender
from core import metrics
from core.storable import text_problem, unstorable

logger = logging.getLogger(__name__)

KIND = "template"
MAX_PARAMETER = 1024
MAX_HEADER_PARAMETER = 60
MAX_TEXT = 4096
# Meta refuses parameters with new lines, tabs or more than 4 consecutive spaces (132018):
# every line or paragraph break and tab Python knows, and 5 or more spaces of any kind.
_BAD_PARAMETER = re.compile(r"[\n\r\t\v\f\x1c-\x1f\x85\u2028\u2029]|\s{5,}")


class TemplatesUnavailableError(Exception):
    """The channel may not send templates (its setup, e.g. a Twilio channel on the platform's
    credentials): a 409 `templates_unavailable` with the reason."""


class OptedOutError(Exception):
    """The contact opted out: no template (a business-initiated message) goes to them."""

    def __init__(self) -> None:
        super().__init__(
            "The contact opted out of messages, so no template is sent to them until they "
            "opt in again."
        )


def channel_templates_refusal(channel: ChannelInstance) -> str:
    """Why the channel may not send templates now, or "" (an uninstalled provider has none
    to send either; its sync says so)."""
    try:
        provider = get_provider(channel)
    except LookupError:
        return ""
    return provider.templates_unavailable(channel=channel)


def _fill(text: str, values: Mapping[str, str]) -> str:
    return re.sub(
        r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", lambda m: values.get(m.group(1), m.group(0)), text
    )


@dataclass(frozen=True)
class TemplateChoice:
    """A template as a send names it, with one value per placeholder of
    `template.parameters`, in the same order."""

    template: ChannelTemplate
    values: list[str]

    def filled(self) -> list[tuple[str, str, str]]:
        """(component, placeholder, value) of every placeholder, in order."""
        return [
            (str(item.get("component", "body")), str(item.get("name", "")), value)
            for item, value in zip(self.template.parameters or [], self.values, strict=True)
        ]

    def rendered(self) -> str:
        """The template's text with the values in place of its placeholders: each text
        component (Cloud API: header, body, footer) filled with its own values."""
        filled = self.filled()
        components = self.template.components
        if isinstance(components, list) and components:
            texts = []
            for component in components:
                kind = str(component.get("type", "")).lower()
                text = str(component.get("text") or "")
                if kind == "header" and str(component.get("format", "TEXT")).upper() != "TEXT":
                    continue
                if kind in ("header", "body", "footer") and text:
                    values = {name: value for part, name, value in filled if part == kind}
                    texts.append(_fill(text, values))
            if texts:
                return "\n\n".join(texts)[:MAX_TEXT]
        values = {name: value for _part, name, value in filled}
        return _fill(self.template.body or self.template.name, values)[:MAX_TEXT]


def _offered(thread: ChatThread) -> list[ChannelTemplate]:
    """The templates a staff member may send on the thread: none to an opted-out contact or on
    a channel that may not send templates."""
    if thread.contact.is_opted_out or channel_templates_refusal(thread.channel):
        return []
    return list(sendable_templates(channel_id=thread.channel_id))


def template_refs(*, thread: ChatThread) -> list[dict[str, Any]]:
    """The templates that may be sent on the thread as an API or a 409 names them: Cloud API
    ones by name and language, Twilio ones by Content SID, each with its placeholders."""
    refs = []
    for template in _offered(thread):
        names = [str(item.get("name", "")) for item in template.parameters]
        if template.content_sid:
            refs.append(
                {"content_sid": template.content_sid, "name": template.name, "variables": names}
            )
        else:
            refs.append({"name": template.name, "language": template.language, "parameters": names})
    return refs


def template_offers(*, thread: ChatThread) -> list[dict[str, Any]]:
    """The templates that may be sent on the thread as the inbox's composer offers them: each
    with its text and one labelled input per placeholder."""
    offers = []
    for template in _offered(thread):
        fields = []
        for item in template.parameters or []:
            name = str(item.get("name", ""))
            where = str(item.get("component", ""))
            label = f"{{{{{name}}}}}" + (f" in the {where}" if where and where != "body" else "")
            default = str(item.get("default", ""))
            fields.append({"label": label, "placeholder": default})
        offers.append(
            {
                "id": str(template.pk),
                "name": template.name,
                "language": template.language,
                "category": template.category.lower(),
                "preview": template.body,
                "fields": fields,
            }
        )
    return offers


def _text_values(raw: Any, *, field: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(value, str) for value in raw):
        raise ValidationError({field: "Must be a list of strings."})
    return raw


def template_choose(*, thread: ChatThread, spec: Mapping[str, Any]) -> TemplateChoice:
    """The approved template of the thread's channel that `spec` names, with its values
    checked against the template's placeholders.

    `spec` is `{"name", "language", "parameters": [...]}` (Cloud API: one value per
    placeholder, header first, in order) or `{"content_sid", "variables": {...}}` (Twilio:
    every variable by its key). Raises ValidationError (a 400) naming what is wrong.
    """
    if not isinstance(spec, Mapping):
        raise ValidationError({"template": "Must be an object."})
    _check_storable(spec)
    if "content_sid" in spec:
        return _choose_content(thread, spec)
    unknown = sorted(set(spec) - {"name", "language", "parameters"})
    if unknown:
        raise ValidationError({"template": f"Unknown keys: {', '.join(unknown)}."})
    name, language = spec.get("name"), spec.get("language")
    if not isinstance(name, str) or not name:
        raise ValidationError({"template.name": "This field is required."})
    if not isinstance(language, str) or not language:
        raise ValidationError({"template.language": "This field is required."})
    found = _find(thread, name=name, language=language, content_sid="")
    values = _text_values(spec.get("parameters", []), field="template.parameters")
    expected = found.parameters or []
    if len(values) != len(expected):
        raise ValidationError(
            {
                "template.parameters": f"The template {name} ({language}) takes "
                f"{len(expected)} parameter(s), not {len(values)}."
            }
        )
    for position, (value, placeholder) in enumerate(zip(values, expected, strict=True)):
        limit = MAX_HEADER_PARAMETER if placeholder.get("component") == "header" else MAX_PARAMETER
        _check_value(value, limit=limit, field=f"template.parameters[{position}]")
    return TemplateChoice(template=found, values=list(values))


def _choose_content(thread: ChatThread, spec: Mapping[str, Any]) -> TemplateChoice:
    unknown = sorted(set(spec) - {"content_sid", "variables"})
    if unknown:
        raise ValidationError({"template": f"Unknown keys: {', '.join(unknown)}."})
    sid = spec.get("content_sid")
    if not isinstance(sid, str) or not sid:
        raise ValidationError({"template.content_sid": "This field is required."})
    found = _find(thread, content_sid=sid)
    variables = spec.get("variables", {})
    if not isinstance(variables, Mapping) or not all(
        isinstance(value, str) for value in variables.values()
    ):
        raise ValidationError({"template.variables": "Must be an object of strings."})
    expected = [str(item.get("name", "")) for item in found.parameters or []]
    unknown = sorted(set(map(str, variables)) - set(expected))
    missing = [name for name in expected if name not in variables]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown)}")
        raise ValidationError(
            {
                "template.variables": f"The template {sid} takes {expected or 'no variables'}: "
                + "; ".join(parts)
                + "."
            }
        )
    for name in expected:
        _check_value(variables[name], limit=MAX_PARAMETER, field=f"template.variables.{name}")
    return TemplateChoice(template=found, values=[variables[name] for name in expected])


def _check_storable(spec: Mapping[str, Any]) -> None:
    """Every string of the spec (keys included) storable and encryptable: a NUL character or
    a lone surrogate is a 400 naming where it is, not a database or encoding error."""
    for loc, problem in unstorable(dict(spec), ("template",)):
        field = "".join(
            f"[{part}]" if isinstance(part, int) else ("." if index else "") + str(part)
            for index, part in enumerate(loc)
        )
        raise ValidationError({field: problem[:1].upper() + problem[1:] + "."})


def _check_value(value: str, *, limit: int, field: str) -> None:
    if problem := text_problem(value):
        raise ValidationError({field: problem[:1].upper() + problem[1:] + "."})
    if not value.strip():
        raise ValidationError({field: "May not be blank."})
    if len(value) > limit:
        raise ValidationError({field: f"Ensure this value has at most {limit} characters."})
    if _BAD_PARAMETER.search(value):
        raise ValidationError(
            {field: "May not contain new lines, tabs or more than 4 spaces in a row."}
        )


def _find(
    thread: ChatThread, *, name: str = "", language: str = "", content_sid: str = ""
) -> ChannelTemplate:
    query = ChannelTemplate.objects.filter(channel_id=thread.channel_id, content_sid=content_sid)
    if not content_sid:
        query = query.filter(name=name, language=language)
    found = query.first()
    label = content_sid or f"{name} ({language})"
    if found is None:
        raise ValidationError(
            {"template": f"The channel has no template {label}; sync its templates first."}
        )
    if not found.sendable:
        state = "no longer listed by the provider" if found.gone_at else found.status or "unknown"
        raise ValidationError({"template": f"The template {label} is not approved ({state})."})
    return found


def _template_message(
    *, thread: ChatThread, choice: TemplateChoice, sender: str, user: Any = None
) -> Message:
    """An unsaved queued template message: the rendered text, the values in `private_data`
    (encrypted), the template's identity in `metadata["template"]`."""
    template = choice.template
    return Message(
        tenant_id=thread.tenant_id,
        thread=thread,
        channel_id=thread.channel_id,
        direction=Direction.OUTBOUND,
        kind=KIND,
        text=choice.rendered(),
        private_data={"template_parameters": [list(item) for item in choice.filled()]},
        status=MessageStatus.QUEUED,
        sender=sender,
        sent_by=user if getattr(user, "pk", None) else None,
        metadata={
            "template": {
                "id": str(template.pk),
                "name": template.name,
                "language": template.language,
                "content_sid": template.content_sid,
                "named": template.named,
            }
        },
        created_at=timezone.now(),
    )


def template_message_store(
    *, thread: ChatThread, choice: TemplateChoice, sender: str, user: Any = None
) -> Message:
    """Store a queued template message (call inside the transaction that schedules its
    sending)."""
    message = _template_message(thread=thread, choice=choice, sender=sender, user=user)
    message.save()
    metrics.message_queued(1)
    return message


def flow_template_message(*, thread: ChatThread, reply: Any, created_at: Any) -> Message:
    """The unsaved message for a flow reply that names a template (`reply.template`, a
    `flows.engine.TemplateSend` with its parameters rendered): queued when the channel has
    that template approved and the parameters fit it; otherwise failed at once with
    `template_unavailable` and the reason (the flow's own text kept), so the inbox shows why
    nothing went out. Never raises for a template problem."""
    ref = reply.template
    values = list(ref.parameters)
    try:
        if reason := channel_templates_refusal(thread.channel):
            raise ValidationError(reason)
        found = _find(thread, name=ref.name, language=ref.language, content_sid=ref.content_sid)
        expected = found.parameters or []
        if len(values) != len(expected):
            raise ValidationError(
                f"The template takes {len(expected)} parameter(s), the flow gives {len(values)}."
            )
        for position, (value, item) in enumerate(zip(values, expected, strict=True)):
            limit = MAX_HEADER_PARAMETER if item.get("component") == "header" else MAX_PARAMETER
            _check_value(value, limit=limit, field=f"parameters[{position}]")
    except ValidationError as exc:
        logger.warning(
            "flow template not sent",
            extra={"thread_id": str(thread.pk), "channel_id": str(thread.channel_id)},
        )
        return Message(
            tenant_id=thread.tenant_id,
            thread=thread,
            channel_id=thread.channel_id,
            direction=Direction.OUTBOUND,
            kind=KIND,
            text=(reply.text or "")[:MAX_TEXT],
            status=MessageStatus.FAILED,
            sender=reply.sender if reply.sender in Sender.values else Sender.FLOW,
            error_code="template_unavailable",
            error_detail="; ".join(exc.messages)[:1000],
            metadata={
                "template": {
                    "name": ref.name,
                    "language": ref.language,
                    "content_sid": ref.content_sid,
                }
            },
            created_at=created_at,
        )
    sender = reply.sender if reply.sender in Sender.values else Sender.FLOW
    message = _template_message(
        thread=thread, choice=TemplateChoice(template=found, values=values), sender=sender
    )
    message.created_at = created_at
    return message


@transaction.atomic
def message_send_template(
    *, thread: ChatThread, spec: Mapping[str, Any], user: Any = None
) -> Message:
    """Queue an approved template as a staff member's (or API client's) message and send it
    after commit: allowed whether or not the 24-hour window is open.

    Raises ValidationError for a template the channel does not have, one not approved, or
    values that do not fit its placeholders (nothing is stored), ContactErasedError for an
    erased contact, OptedOutError for one who opted out and TemplatesUnavailableError for a
    channel that may not send templates.
    """
    from conversations.services import outbound

    if thread.contact.erased_at is not None:
        raise outbound.ContactErasedError()
    if thread.contact.is_opted_out:
        raise OptedOutError()
    if reason := channel_templates_refusal(thread.channel):
        raise TemplatesUnavailableError(reason)
    choice = template_choose(thread=thread, spec=spec)
    message = template_message_store(thread=thread, choice=choice, sender=Sender.AGENT, user=user)
    now = message.created_at
    ChatThread.objects.filter(pk=thread.pk).update(last_activity_at=now, updated_at=now)
    outbound.handoff_first_reply(thread_id=thread.pk, now=now)
    outbound._schedule_send(thread)
    logger.info(
        "template message queued",
        extra={"message_id": str(message.pk), "thread_id": str(thread.pk)},
    )
    return message


def template_payload(message: Message) -> TemplateMessage | None:
    """The template a queued message sends (None for any other message)."""
    if message.kind != KIND:
        return None
    identity = (message.metadata or {}).get("template") or {}
    parameters = (message.private_data or {}).get("template_parameters") or []
    filled = tuple((str(c), str(n), str(v)) for c, n, v in parameters)
    if identity.get("content_sid"):
        return TemplateMessage(
            content_sid=str(identity["content_sid"]),
            variables=tuple((name, value) for _component, name, value in filled),
        )
    return TemplateMessage(
        name=str(identity.get("name", "")),
        language=str(identity.get("language", "")),
        parameters=filled,
        named=bool(identity.get("named")),
    )
