"""Command tools as library calls: list them, show one, test one by hand (`agents tools list/show/test`), and
the custom tools of one agent (for `agents show`). What --json prints is built here."""

from __future__ import annotations

import asyncio
import difflib
import sys
import time
from dataclasses import dataclass
from typing import Any

from letta_cli.core.errors import AgentsError, NotFound, ToolError, UsageError
from letta_cli.core.models import AgentDef
from letta_cli.core.text import clip
from letta_cli.store.agents import AgentStore
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace
from letta_cli.tools.command import Declared, Result, declared_tools, execute, prepare
from letta_cli.tools.registry import builtin_tools


class ToolRunFailed(AgentsError):
    """`agents tools test`: the command ran and failed (non-zero exit, timeout, would not start)."""

    exit_code = 1


@dataclass
class ToolInfo:
    declared: Declared
    agents: list[str]  # the agents offered this declaration (their `tools` lists name it)

    def to_json(self) -> dict[str, Any]:
        spec = self.declared.spec
        return {
            "name": self.declared.name,
            "source": self.declared.source,
            "description": spec.description,
            "command": spec.argv(sys.executable),
            "parameters": spec.arguments_schema(),
            "timeout": spec.timeout,
            "output_limit": spec.output_limit,
            "env": spec.env,
            "idempotent": spec.idempotent,
            "flags": spec.flags,
            "agents": self.agents,
        }


def offered_to(agent: AgentDef, name: str) -> bool:
    return agent.tools is not None and name in agent.tools and name not in agent.disabled_tools


def list_tools(ws: Workspace) -> list[ToolInfo]:
    """Every declared command tool: the workspace's, then those of agent files (one row per declaration),
    each with the agents it is offered to."""
    agents = AgentStore(ws).load_all().agents
    out = [ToolInfo(d, []) for d in declared_tools(ws).values()]
    by_name = {info.declared.name: info for info in out}
    for agent in agents:
        for name, d in declared_tools(ws, agent).items():
            if d.source == "agents.toml":
                if offered_to(agent, name):
                    by_name[name].agents.append(agent.name)
            else:
                out.append(ToolInfo(d, [agent.name] if offered_to(agent, name) else []))
    return out


def find_tool(ws: Workspace, name: str, agent: str | None = None) -> Declared:
    """The declaration an agent would use (its own file's, else the workspace's), or the workspace's."""
    owner = AgentStore(ws).get(agent) if agent is not None else None
    declared = declared_tools(ws, owner)
    if name in declared:
        return declared[name]
    if agent is None:  # declared in exactly one agent file: that one
        found = [i.declared for i in list_tools(ws) if i.declared.name == name]
        if len(found) == 1:
            return found[0]
        if found:
            sources = ", ".join(d.source for d in found)
            raise UsageError(f"tool {name!r} is declared in several agent files ({sources}); name one with --agent")
    if name in builtin_tools():
        raise NotFound(f"{name!r} is a built-in tool, not a command tool")
    known = [i.declared.name for i in list_tools(ws)]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else f" (command tools: {', '.join(known) or 'none'})"
    raise NotFound(f"no command tool named {name!r}{' for agent ' + repr(agent) if agent else ''}{hint}")


def show_tool(ws: Workspace, name: str, agent: str | None = None) -> ToolInfo:
    d = find_tool(ws, name, agent)
    users = [
        a.name for a in AgentStore(ws).load_all().agents if offered_to(a, name) and declared_tools(ws, a).get(name) == d
    ]
    return ToolInfo(d, users)


@dataclass
class ToolRun:
    tool: str
    source: str
    arguments: dict[str, Any]
    result: Result

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "source": self.source, "arguments": self.arguments, **self.result.to_json()}


def run_once(ws: Workspace, name: str, arguments: str, agent: str | None = None) -> ToolRun:
    """Run a command tool once by hand, as a turn of `agent` would (nothing recorded for replays). Bad
    arguments are a UsageError; a run that failed is returned too (its result has the error)."""
    d = find_tool(ws, name, agent)
    try:
        values = prepare(d, arguments or "{}")
    except ToolError as exc:
        raise UsageError(str(exc)) from None
    started = time.monotonic()
    result = asyncio.run(execute(ws, d, values, agent=agent or "cli", call=f"cli:{int(time.time() * 1000)}"))
    ws.ensure_state()
    Trace(ws.trace_path).emit(
        "tool_test",
        agent=agent or "cli",
        tool=name,
        source=d.source,
        arguments=values,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        duration_ms=round((time.monotonic() - started) * 1000),
        result=clip(result.output or result.error or "", 500),
        error=result.error is not None,
    )
    return ToolRun(name, d.source, values, result)


def agent_tools(ws: Workspace, agent: AgentDef) -> list[dict[str, Any]]:
    """The custom tools an agent's `tools` list names: where each is declared and whether it is offered."""
    builtins = builtin_tools()
    declared = declared_tools(ws, agent)
    out = []
    for name in agent.tools or []:
        if name in builtins:
            continue
        d = declared.get(name)
        if name in agent.disabled_tools:
            status = "disabled"
        elif d is None:
            status = "not declared (never offered)"
        else:
            status = "offered"
        out.append({"name": name, "source": d.source if d else None, "status": status})
    return out
