"""Writes for flows, and the only adapter between Django and the pure-Python flow engine.

- `versions`: validating a flow document, storing a new version, activating one;
- `automation`: running a thread's flow on one inbound message and returning what it decided.
"""

from flows.services.automation import (
    NO_FLOW_KINDS,
    FlowHandoff,
    FlowRun,
    Reply,
    flow_expire_stale_wait,
    flow_fire_wait,
    flow_handle_inbound,
    flow_sessions_interrupt,
)
from flows.services.versions import flow_create, flow_set_active, flow_validate

__all__ = [
    "NO_FLOW_KINDS",
    "FlowHandoff",
    "FlowRun",
    "Reply",
    "flow_create",
    "flow_expire_stale_wait",
    "flow_fire_wait",
    "flow_handle_inbound",
    "flow_sessions_interrupt",
    "flow_set_active",
    "flow_validate",
]
