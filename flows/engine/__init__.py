"""The flow engine: pure Python, no Django, no I/O, no clock.

Django talks to it through small values: a validated :class:`FlowDefinition`, a
:class:`SessionState`, an :class:`InboundMessage` and a :class:`RunContext` go in; a
:class:`StepResult` (new state, outbound messages, events) comes out. ``flows.services`` is the
only adapter.
"""

from .answers import Answer, check_answer
from .conditions import evaluate, to_number
from .definition import (
    AINode,
    BranchNode,
    EndNode,
    FlowDefinition,
    HandoffNode,
    InputNode,
    MessageNode,
    Node,
    QuestionChoice,
    QuestionNode,
    SetNode,
    Settings,
    Trigger,
    WhatsAppTemplate,
)
from .runtime import (
    MAX_NODES_PER_STEP,
    AIAnswerNeeded,
    AIError,
    AIRequest,
    AIResponder,
    Choice,
    Event,
    EventType,
    InboundMessage,
    OutboundMessage,
    RunContext,
    SessionState,
    Status,
    StepResult,
    TemplateSend,
    expire_session,
    fire_timeout,
    interrupt_session,
    match_choice,
    resume_session,
    session_is_stale,
    start_session,
)
from .schema import flow_json_schema, flow_json_schema_text
from .selection import FlowCandidate, choose_default_flow, match_keyword_flow, select_flow
from .templates import TemplateContext, render
from .text import is_keyword, normalize, words
from .validation import FlowValidationError, ValidationIssue, parse_flow, validate_flow

__all__ = [
    "MAX_NODES_PER_STEP",
    "AIAnswerNeeded",
    "AIError",
    "AINode",
    "AIRequest",
    "AIResponder",
    "Answer",
    "BranchNode",
    "Choice",
    "EndNode",
    "Event",
    "EventType",
    "FlowCandidate",
    "FlowDefinition",
    "FlowValidationError",
    "HandoffNode",
    "InboundMessage",
    "InputNode",
    "MessageNode",
    "Node",
    "OutboundMessage",
    "QuestionChoice",
    "QuestionNode",
    "RunContext",
    "SessionState",
    "SetNode",
    "Settings",
    "Status",
    "StepResult",
    "TemplateContext",
    "TemplateSend",
    "Trigger",
    "ValidationIssue",
    "WhatsAppTemplate",
    "check_answer",
    "choose_default_flow",
    "evaluate",
    "expire_session",
    "fire_timeout",
    "flow_json_schema",
    "flow_json_schema_text",
    "interrupt_session",
    "is_keyword",
    "match_choice",
    "match_keyword_flow",
    "normalize",
    "parse_flow",
    "render",
    "resume_session",
    "select_flow",
    "session_is_stale",
    "start_session",
    "to_number",
    "validate_flow",
    "words",
]
