"""Agent definitions as the commands build them: `agents create` options to a validated definition."""

from __future__ import annotations

from pydantic import ValidationError

from letta_cli.core.config import describe_validation
from letta_cli.core.errors import UsageError
from letta_cli.core.models import AgentDef
from letta_cli.core.names import check_name
from letta_cli.tools.registry import builtin_tools


def new_agent(
    name: str,
    *,
    model: str | None = None,
    system: str | None = None,
    description: str = "",
    tags: list[str] | None = None,
    memory: dict[str, str] | None = None,
    shared: list[str] | None = None,
    first_tool: str | None = None,
    tools: list[str] | None = None,
) -> AgentDef:
    """Build (and validate) a definition from the `agents create` options; bad options are usage errors."""
    check_name(name)
    known = builtin_tools()
    for tool in [*(tools or []), *([first_tool] if first_tool else [])]:
        if tool not in known:
            raise UsageError(f"unknown tool {tool!r}; built-in tools: {', '.join(known)}")
    data: dict = {"name": name, "description": description, "tags": tags or []}
    if model:
        data["model"] = model
    if system is not None:
        data["system"] = system
    data["memory"] = {"blocks": {k: {"value": v} for k, v in (memory or {}).items()}, "shared": shared or []}
    if first_tool:
        data["tool_rules"] = {"first": first_tool}
    if tools is not None:
        data["tools"] = tools
    try:
        return AgentDef.model_validate(data)
    except ValidationError as exc:
        raise UsageError(describe_validation(f"agent {name!r}", exc)) from None


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    """['persona=I am X', ...] -> {'persona': 'I am X'}"""
    out: dict[str, str] = {}
    for item in items:
        label, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{what} must look like LABEL=VALUE, got {item!r}")
        out[check_name(label.strip(), "block label")] = value
    return out
