"""What a tool is: a name, a JSON schema, and a handler that gets the turn's context and the parsed arguments
and returns the text the model sees. A ToolError's message goes back to the model as the tool's result, and
the turn goes on."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from letta_cli.core.errors import ToolError
from letta_cli.ports import TurnContext

Handler = Callable[["TurnContext", dict[str, Any]], Awaitable[str]]
MAX_RESULT_CHARS = 8000


@dataclass(frozen=True)
class Tool:
    name: str
    schema: dict[str, Any]
    handler: Handler
    # narrows the schema for one turn (e.g. to the agent ids that exist), so grammar-constrained servers
    # such as llama.cpp can only produce valid arguments
    specialize: Callable[[TurnContext, dict[str, Any]], dict[str, Any]] | None = None


def function_schema(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def require_str(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ToolError(f"argument {key!r} must be a string")
    return value


def parse_arguments(raw: str) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise ToolError(f"the arguments are not valid JSON ({getattr(exc, 'msg', exc)}); send a JSON object") from None
    except RecursionError:
        raise ToolError("the arguments are nested too deeply; send a flat JSON object") from None
    if not isinstance(args, dict):
        raise ToolError("the arguments must be a JSON object")
    return args


def clip_result(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"... [{len(text) - MAX_RESULT_CHARS} more chars cut]"
