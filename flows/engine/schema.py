"""The JSON Schema of the flow format, generated from the pydantic models.

Regenerate the committed copy with::

    python -m flows.engine > flows/schema/flow-v1.schema.json

The schema describes shapes and limits; the cross-node rules (references, reachability, cycles,
template namespaces) are only checked by :func:`flows.engine.validate_flow`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .definition import FlowDefinition

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a flow document, version 1."""
    schema = FlowDefinition.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def flow_json_schema_text() -> str:
    """The schema as committed: indented, keys sorted, ending with a newline."""
    return json.dumps(flow_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    """Print the schema as committed (see the module docstring)."""
    sys.stdout.write(flow_json_schema_text())
