"""Pydantic models of the flow definition format, version 1 (``flow-format.md``).

The models check types, limits and everything that can be decided by looking at one value
(template placeholders, regexes, operator/value pairs). Checks that span the whole document
(node ids, references, reachability, cycles) live in :mod:`flows.engine.validation`, which is the
entry point: use :func:`flows.engine.parse_flow` rather than ``FlowDefinition.model_validate``.

All models are frozen and reject unknown keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from . import patterns
from .templates import VAR_NAME_PATTERN, template_errors
from .text import normalize

SCHEMA_VERSION = 1
SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VARIABLE_PATTERN = rf"^{VAR_NAME_PATTERN}$"
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
MAX_TEXT_LENGTH = 4096
MAX_NODES = 1000
MAX_CHOICES = 10
MAX_REGEX_LENGTH = 200
MAX_CONDITION_DEPTH = 16
WAITING_NODE_TYPES = frozenset({"question", "input", "ai"})
NODE_TYPES = ("message", "question", "input", "branch", "set", "ai", "handoff", "end")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- value checks ---------------------------------------------------------------------------


def _check_template(value: str) -> str:
    errors = template_errors(value)
    if errors:
        raise ValueError("; ".join(errors))
    return value


def _check_not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _check_keyword(value: str) -> str:
    if not normalize(value):
        raise ValueError(f"keyword {value!r} is empty once case, accents and punctuation go")
    return value


def _check_regex(value: str) -> str:
    # Messages are predicates ("is not a valid regex: ..."): they follow the regex's path.
    if len(value) > MAX_REGEX_LENGTH:
        raise ValueError(f"is longer than {MAX_REGEX_LENGTH} characters")
    patterns.compile_check(value)
    return value


def _check_https_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("must be an https URL") from None
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError("must be an https URL")
    return value


def _show(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_schema_version(value: object) -> object:
    # Literal[1] alone would accept True and 1.0; the format says "the integer 1".
    if type(value) is int and value == SCHEMA_VERSION:
        return value
    raise ValueError(
        f"unsupported schema_version {_show(value)}: this engine reads version {SCHEMA_VERSION} "
        f'of the flow format, write "schema_version": {SCHEMA_VERSION}'
    )


TEMPLATE_DESCRIPTION = (
    "A template: `{{ name }}` placeholders from contact.name, contact.phone, tenant.name, "
    "vars.NAME and input, each optionally with a fallback for an empty value, "
    '`{{ contact.name | default: "there" }}` (or single quotes; 1 to 100 characters). '
    "An empty value without a fallback renders as nothing and takes the space and comma "
    'dangling before it ("Hi {{ contact.name }}!" -> "Hi!").'
)
Template = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEXT_LENGTH, description=TEMPLATE_DESCRIPTION),
    AfterValidator(_check_not_blank),
    AfterValidator(_check_template),
]
SetTemplate = Annotated[
    str,
    Field(max_length=MAX_TEXT_LENGTH, description=TEMPLATE_DESCRIPTION),
    AfterValidator(_check_template),
]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
NodeId = Annotated[str, Field(pattern=SLUG_PATTERN)]
VariableName = Annotated[str, Field(pattern=VARIABLE_PATTERN)]
Keyword = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_check_keyword)]
Regex = Annotated[
    str, Field(min_length=1, max_length=MAX_REGEX_LENGTH), AfterValidator(_check_regex)
]
HttpsUrl = Annotated[str, Field(max_length=2048), AfterValidator(_check_https_url)]
Retries = Annotated[int, Field(ge=0, le=5)]


# --- conditions -----------------------------------------------------------------------------

Operator = Literal["eq", "ne", "in", "contains", "matches", "gt", "gte", "lt", "lte", "exists"]
JsonScalar = str | int | float | bool | None
ConditionValue = JsonScalar | list[JsonScalar]
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})


class _Comparison(_Model):
    op: Operator
    value: ConditionValue = None

    @model_validator(mode="after")
    def _check_value_fits_operator(self) -> _Comparison:
        has_value = "value" in self.model_fields_set
        value = self.value
        if self.op == "exists":
            if has_value:
                raise ValueError('op "exists" takes no "value"')
            return self
        if not has_value:
            raise ValueError(f'op "{self.op}" needs a "value"')
        if self.op == "in":
            if not isinstance(value, list):
                raise ValueError('op "in" needs "value" to be an array')
        elif self.op == "contains":
            items = value if isinstance(value, list) else [value]
            if not items or not all(isinstance(item, str) and normalize(item) for item in items):
                raise ValueError('op "contains" needs "value" to be a word or an array of words')
        elif self.op == "matches":
            if not isinstance(value, str):
                raise ValueError('op "matches" needs "value" to be a regex string')
            try:
                _check_regex(value)
            except ValueError as exc:
                raise ValueError(f'"value" {exc}') from None
        elif self.op in NUMERIC_OPERATORS:
            from .conditions import to_number  # local: conditions imports this module

            if isinstance(value, list) or to_number(value) is None:
                raise ValueError(f'op "{self.op}" needs "value" to be a number')
        elif isinstance(value, list):
            raise ValueError(f'op "{self.op}" needs a single value, not an array (use "in")')
        return self


class VarCondition(_Comparison):
    """Compares the flow variable ``var`` with ``value``."""

    var: VariableName


class InputCondition(_Comparison):
    """Compares the latest inbound text with ``value``. ``input`` must be ``true``."""

    input: bool

    @field_validator("input")
    @classmethod
    def _must_be_true(cls, value: bool) -> bool:
        if value is not True:
            raise ValueError("must be true")
        return value


class AllCondition(_Model):
    """True when every condition is true."""

    all: list[Condition] = Field(min_length=1, max_length=50)


class AnyCondition(_Model):
    """True when at least one condition is true."""

    any: list[Condition] = Field(min_length=1, max_length=50)


class NotCondition(_Model):
    """True when the condition is false."""

    not_: Condition = Field(alias="not")


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        for key in ("var", "input", "all", "any", "not"):
            if key in value:
                return f"cond:{key}"
    if isinstance(value, BaseModel):
        return {
            VarCondition: "cond:var",
            InputCondition: "cond:input",
            AllCondition: "cond:all",
            AnyCondition: "cond:any",
            NotCondition: "cond:not",
        }.get(type(value))
    return None


Condition = Annotated[
    Annotated[VarCondition, Tag("cond:var")]
    | Annotated[InputCondition, Tag("cond:input")]
    | Annotated[AllCondition, Tag("cond:all")]
    | Annotated[AnyCondition, Tag("cond:any")]
    | Annotated[NotCondition, Tag("cond:not")],
    Discriminator(
        _condition_tag,
        custom_error_type="invalid_condition",
        custom_error_message=(
            'a condition is an object with one of "var", "input", "all", "any" or "not"'
        ),
    ),
]


def condition_depth(condition: Condition) -> int:
    """Nesting depth of a condition (a comparison is 1)."""
    if isinstance(condition, AllCondition):
        return 1 + max(condition_depth(item) for item in condition.all)
    if isinstance(condition, AnyCondition):
        return 1 + max(condition_depth(item) for item in condition.any)
    if isinstance(condition, NotCondition):
        return 1 + condition_depth(condition.not_)
    return 1


# --- nodes ----------------------------------------------------------------------------------


class Timeout(_Model):
    """If no reply comes within ``seconds``, the flow goes on at ``next``."""

    seconds: int = Field(ge=60, le=86400)
    next: NodeId


class QuestionChoice(_Model):
    """One answer of a ``question`` node."""

    id: Slug
    label: Annotated[str, Field(min_length=1, max_length=20), AfterValidator(_check_not_blank)]
    keywords: list[Keyword] = Field(default_factory=list, max_length=50)
    next: NodeId


class BranchCase(_Model):
    """``next`` is taken when ``when`` is true."""

    when: Condition
    next: NodeId

    @field_validator("when")
    @classmethod
    def _limit_depth(cls, value: Condition) -> Condition:
        if condition_depth(value) > MAX_CONDITION_DEPTH:
            raise ValueError(f"condition is nested deeper than {MAX_CONDITION_DEPTH} levels")
        return value


class _Node(_Model):
    id: NodeId


MAX_TEMPLATE_PARAMETERS = 20


class WhatsAppTemplate(_Model):
    """An approved WhatsApp message template of the channel (an extension of the format): a
    Cloud API one by ``name`` and ``language``, or a Twilio Content template by
    ``content_sid``. ``parameters`` fill its placeholders in order (a Cloud API template's
    header first, then its body; a Twilio template's variables by their order) and are
    templates themselves (``{{ contact.name }}``)."""

    name: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    language: Annotated[str, Field(min_length=2, max_length=20)] | None = None
    content_sid: Annotated[str, Field(pattern=r"^HX[0-9a-fA-F]{32}$")] | None = None
    parameters: Annotated[list[Template], Field(max_length=MAX_TEMPLATE_PARAMETERS)] = []

    @model_validator(mode="after")
    def _named_once(self) -> WhatsAppTemplate:
        by_name = self.name is not None or self.language is not None
        if by_name and self.content_sid is not None:
            raise ValueError("name a template by name and language, or by content_sid, not both")
        if self.content_sid is None and (self.name is None or self.language is None):
            raise ValueError("a template needs name and language (or content_sid)")
        return self


class MessageNode(_Node):
    """Sends ``text`` (and ``media_url``), then goes on to ``next``; without it the flow ends.

    With ``whatsapp_template`` (an extension of the format) it sends that approved template
    instead: when the contact's 24-hour window is closed (``send_template: "window_closed"``,
    the default; ``text`` is sent while it is open), or always (``"always"``)."""

    type: Literal["message"]
    text: Template
    media_url: HttpsUrl | None = None
    whatsapp_template: WhatsAppTemplate | None = None
    send_template: Literal["window_closed", "always"] | None = None
    next: NodeId | None = None

    @model_validator(mode="after")
    def _template_mode(self) -> MessageNode:
        if self.send_template is not None and self.whatsapp_template is None:
            raise ValueError("send_template needs a whatsapp_template")
        return self


class QuestionNode(_Node):
    """Sends ``text`` with ``choices`` and waits for a reply that matches one."""

    type: Literal["question"]
    text: Template
    choices: list[QuestionChoice] = Field(min_length=1, max_length=MAX_CHOICES)
    save_as: VariableName | None = None
    retry_text: Template | None = None
    max_retries: Retries = 2
    on_invalid: NodeId | None = None
    timeout: Timeout | None = None


class RegexRule(_Model):
    """The answer must match ``regex`` as a whole."""

    regex: Regex


# `location` and `flow_reply` are answered by a shared location or a WhatsApp Flow's answers
# (the message's structured content, stored as an object), not by text.
InputRuleName = Literal["any", "email", "number", "phone", "date", "location", "flow_reply"]


def _input_rule_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "rule:name"
    if isinstance(value, Mapping | RegexRule):
        return "rule:regex"
    return None


InputRule = Annotated[
    Annotated[InputRuleName, Tag("rule:name")] | Annotated[RegexRule, Tag("rule:regex")],
    Discriminator(
        _input_rule_tag,
        custom_error_type="invalid_input_rule",
        custom_error_message=(
            'must be "any", "email", "number", "phone", "date", "location", "flow_reply" '
            'or {"regex": "..."}'
        ),
    ),
]


class InputNode(_Node):
    """Sends ``text`` and waits for a free-text answer, validated and stored in ``save_as``."""

    type: Literal["input"]
    text: Template
    save_as: VariableName
    validate_: InputRule = Field(default="any", alias="validate")
    retry_text: Template | None = None
    max_retries: Retries = 2
    on_invalid: NodeId | None = None
    timeout: Timeout | None = None
    next: NodeId


class BranchNode(_Node):
    """Chooses the next node from ``cases`` (tried in order) or ``default``; sends nothing."""

    type: Literal["branch"]
    cases: list[BranchCase] = Field(default_factory=list, max_length=100)
    default: NodeId


class SetNode(_Node):
    """Stores each rendered template of ``values`` in its variable, then goes on to ``next``."""

    type: Literal["set"]
    values: dict[VariableName, SetTemplate] = Field(min_length=1, max_length=100)
    next: NodeId


class AINode(_Node):
    """Answers the contact's replies with the tenant's language model, up to ``max_turns``."""

    type: Literal["ai"]
    text: Template | None = None
    instructions: Template
    max_turns: int = Field(default=5, ge=1, le=20)
    history_messages: int = Field(default=10, ge=0, le=50)
    exit_keywords: list[Keyword] = Field(default_factory=list, max_length=50)
    save_as: VariableName | None = None
    fallback_text: Template | None = None
    on_error: NodeId | None = None
    next: NodeId | None = None


class HandoffNode(_Node):
    """Sends ``text`` if given, hands the thread to a human with ``reason`` and ends the session."""

    type: Literal["handoff"]
    text: Template | None = None
    reason: Annotated[str, Field(max_length=500)] = ""


class EndNode(_Node):
    """Sends ``text`` if given and ends the session."""

    type: Literal["end"]
    text: Template | None = None


def _node_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        node_type = value.get("type")
        return f"node:{node_type}" if isinstance(node_type, str) else None
    if isinstance(value, _Node):
        return f"node:{getattr(value, 'type', '')}"
    return None


Node = Annotated[
    Annotated[MessageNode, Tag("node:message")]
    | Annotated[QuestionNode, Tag("node:question")]
    | Annotated[InputNode, Tag("node:input")]
    | Annotated[BranchNode, Tag("node:branch")]
    | Annotated[SetNode, Tag("node:set")]
    | Annotated[AINode, Tag("node:ai")]
    | Annotated[HandoffNode, Tag("node:handoff")]
    | Annotated[EndNode, Tag("node:end")],
    Discriminator(_node_tag),
]
WaitingNode = QuestionNode | InputNode | AINode


# --- top level ------------------------------------------------------------------------------


class Trigger(_Model):
    """When this flow starts a conversation."""

    keywords: list[Keyword] = Field(default_factory=list, max_length=100)
    match: Literal["first_word", "only_word"] = "first_word"
    default: bool = False
    weight: int = Field(default=100, ge=1, le=100)


class Settings(_Model):
    """Per-flow behaviour of waiting sessions."""

    session_timeout_seconds: int = Field(default=86400, ge=60, le=604800)
    ignore_keywords: bool = False


class FlowDefinition(_Model):
    """A whole, validated flow. Build it with :func:`flows.engine.parse_flow`.

    Guarantees once built by ``parse_flow``: node ids are unique, every reference names a node,
    every node is reachable from ``start`` and every cycle passes through a waiting node.
    """

    model_config = ConfigDict(
        title="Flow definition, version 1",
        json_schema_extra={"$id": "https://chatai.example/schema/flow-v1.schema.json"},
    )

    schema_version: Annotated[Literal[1], BeforeValidator(_check_schema_version)]
    flow_id: Slug
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_not_blank)]
    description: Annotated[str, Field(max_length=10000)] | None = None
    language: Annotated[str, Field(pattern=LANGUAGE_PATTERN, max_length=35)] = "en"
    trigger: Trigger = Field(default_factory=Trigger)
    settings: Settings = Field(default_factory=Settings)
    start: NodeId
    nodes: list[Node] = Field(min_length=1, max_length=MAX_NODES)

    _nodes_by_id: Mapping[str, Node] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._nodes_by_id = MappingProxyType({node.id: node for node in self.nodes})

    @property
    def nodes_by_id(self) -> Mapping[str, Node]:
        """Read-only mapping of node id to node."""
        return self._nodes_by_id

    def node(self, node_id: str) -> Node:
        """The node called ``node_id``; ``KeyError`` when there is none."""
        return self._nodes_by_id[node_id]

    def get_node(self, node_id: str | None) -> Node | None:
        """The node called ``node_id``, or ``None``."""
        return self._nodes_by_id.get(node_id) if node_id is not None else None


for _model in (AllCondition, AnyCondition, NotCondition, BranchCase, BranchNode, FlowDefinition):
    _model.model_rebuild()
