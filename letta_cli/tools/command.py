"""Command tools: the user's own commands, declared in TOML (letta_cli.core.tool_specs), offered to an agent
whose `tools` list names them, run by letta_cli.tools.process.

A call's arguments are checked twice over: their types by the same validator as a built-in tool's (so the
model reads the same kind of error), then every constraint of the JSON schema (enum, minimum, pattern...) by
the jsonschema library. Each call is keyed like a memory edit (message id, call number, a hash of the call)
and its result recorded (store.tool_results) before the model sees it, so a turn replayed after a crash
gets the recorded result and runs nothing; a tool not marked idempotent also records that it started, and is
never run a second time for one call: a replay finding it started but unfinished tells the model so instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, PrivateAttr, model_validator

from letta_cli.core.errors import InvalidFile, ToolError
from letta_cli.core.faults import crashpoint
from letta_cli.core.models import AgentDef
from letta_cli.core.text import clip, flatten
from letta_cli.core.tool_specs import CommandToolSpec
from letta_cli.ports import TurnContext
from letta_cli.store.tool_results import ToolCalls
from letta_cli.store.workspace import Workspace
from letta_cli.tools.base import Tool, model_of
from letta_cli.tools.process import run_command, scrubbed_env
from letta_cli.tools.registry import builtin_tools

WORKSPACE_FILE = "agents.toml"


@dataclass(frozen=True)
class Declared:
    name: str
    spec: CommandToolSpec
    source: str  # "agents.toml" or "agents.d/<agent>.toml"


class Traced(str):
    """A tool result that carries more fields for its trace event (exit code, duration, replayed)."""

    trace: dict[str, Any]

    def __new__(cls, text: str, trace: dict[str, Any]) -> Traced:
        out = super().__new__(cls, text)
        out.trace = trace
        return out


class CommandFailed(ToolError):
    """A non-zero exit, a timeout or a command that would not start: the model reads it, and the trace
    gets the same fields as a success."""

    def __init__(self, message: str, trace: dict[str, Any]):
        super().__init__(message)
        self.trace = trace


@dataclass
class Result:
    """One run of a command tool (or its recorded result)."""

    output: str | None  # the clipped stdout, if it succeeded
    error: str | None  # what the model reads if it did not
    exit_code: int | None
    duration_ms: int
    timed_out: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "error": self.error,
            "exit_code": self.exit_code,
            "duration_ms": self.duration_ms,
            "timed_out": self.timed_out,
        }


# ---------------------------------------------------------------------------------------- declarations


def declared_tools(ws: Workspace, agent: AgentDef | None = None) -> dict[str, Declared]:
    """The command tools declared for the workspace (agents.toml) and, if given, in an agent's own file
    (which wins over a workspace tool of the same name). A declared tool named like a built-in is an error."""
    out = {n: Declared(n, s, WORKSPACE_FILE) for n, s in ws.config.tools.items()}
    if agent is not None:
        source = f"agents.d/{agent.name}.toml"
        out |= {n: Declared(n, s, source) for n, s in agent.command_tools.items()}
    builtins = builtin_tools()
    for d in out.values():
        if d.name in builtins:
            raise InvalidFile(f"{d.source}: command tool {d.name!r} has the name of a built-in tool; rename it")
    return out


def custom_tools(ws: Workspace, agent: AgentDef) -> dict[str, Tool]:
    """The command tools this agent is offered: those its `tools` list names (never by default)."""
    if not agent.tools:
        return {}
    wanted = [n for n in agent.tools if n not in builtin_tools() and n not in agent.disabled_tools]
    if not wanted:
        return {}
    declared = declared_tools(ws, agent)
    return {n: command_tool(declared[n]) for n in wanted if n in declared}


_cache: dict[tuple[str, str, str], tuple[Tool, Any]] = {}


def command_tool(d: Declared) -> Tool:
    """The Tool of a declaration (cached: its argument models are built once per process)."""
    return _compiled(d)[0]


def prepare(d: Declared, raw: str) -> dict[str, Any]:
    """The model's (or a person's) arguments as JSON text -> the values the command gets, checked against
    the schema; a ToolError says what is wrong."""
    tool, check = _compiled(d)
    values = dict(tool.validate(raw)._raw)  # type: ignore[attr-defined]
    check(values)
    return values


def _compiled(d: Declared) -> tuple[Tool, Any]:
    key = (d.name, d.source, d.spec.model_dump_json())
    if key not in _cache:
        parameters = d.spec.arguments_schema()
        check = constraint_checker(d, parameters)

        async def run(ctx: TurnContext, args: Any) -> str:
            values = dict(args._raw)
            check(values)
            return await run_in_turn(ctx, d, values)

        model = keeping_raw(model_of(d.name, parameters))
        _cache[key] = (Tool(d.name, d.spec.description or d.name, model, parameters, run), check)
    return _cache[key]


def keeping_raw(model: type[BaseModel]) -> type[BaseModel]:
    """The arguments model, also keeping the values as the model sent them (3 stays 3, not 3.0): those are
    what the command gets."""

    class Raw(model):  # type: ignore[misc, valid-type]
        _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

        @model_validator(mode="wrap")
        @classmethod
        def _keep(cls, value: Any, handler: Any) -> Any:
            out = handler(value)
            out._raw = dict(value) if isinstance(value, dict) else {}
            return out

    Raw.__name__ = model.__name__
    return Raw


def constraint_checker(d: Declared, parameters: dict[str, Any]) -> Any:
    """A function raising a ToolError for the first value breaking the schema (enum, minimum, pattern...)."""
    import jsonschema

    cls = jsonschema.validators.validator_for(parameters, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(parameters)
    except jsonschema.SchemaError as exc:
        raise InvalidFile(
            f"{d.source}: tool {d.name!r}: parameters are not a valid JSON schema: {exc.message}"
        ) from None
    validator = cls(parameters)

    def check(values: dict[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(values))
        if error is None:
            return
        where = ".".join(str(p) for p in error.absolute_path)
        raise ToolError(f"{d.name}: {'argument ' + repr(where) + ': ' if where else ''}{clip(error.message, 300)}")

    return check


# ------------------------------------------------------------------------------------------- running


def flag_argv(values: dict[str, Any]) -> list[str]:
    """--key value for each argument: true is a bare --key, false and null are left out, a list repeats."""
    out: list[str] = []
    for key, value in values.items():
        if value is None or value is False:
            continue
        if value is True:
            out.append(f"--{key}")
            continue
        for item in value if isinstance(value, list) else [value]:
            out += [f"--{key}", item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)]
    return out


async def execute(
    ws: Workspace, d: Declared, values: dict[str, Any], *, agent: str, call: str, env: Mapping[str, str] | None = None
) -> Result:
    """Run the command once with these (valid) arguments; `env`: the sender's environment (None: ours)."""
    spec = d.spec
    argv = spec.argv(sys.executable) + (flag_argv(values) if spec.flags else [])
    ours = {"AGENTS_WORKSPACE": str(ws.root), "AGENTS_AGENT": agent, "AGENTS_TOOL": d.name, "AGENTS_CALL_ID": call}
    stdin = json.dumps(values, ensure_ascii=False).encode()
    try:
        outcome = await run_command(
            argv,
            stdin,
            cwd=ws.root,
            env=scrubbed_env(spec.env, ours, env),
            timeout=spec.timeout,
            limit=spec.output_limit,
        )
    except OSError as exc:
        return Result(None, f"{d.name}: cannot run {argv[0]!r}: {exc.strerror or exc}", None, 0)
    ms = round(outcome.duration * 1000)
    if outcome.timed_out:
        return Result(None, f"{d.name}: timed out after {spec.timeout:g} s (killed)", None, ms, timed_out=True)
    if outcome.exit_code != 0:
        said = flatten(outcome.stderr, 1000) or flatten(outcome.stdout, 1000)
        return Result(
            None, f"{d.name}: exited with code {outcome.exit_code}{': ' + said if said else ''}", outcome.exit_code, ms
        )
    return Result(outcome.stdout.rstrip() or "(no output)", None, 0, ms)


async def run_in_turn(ctx: TurnContext, d: Declared, values: dict[str, Any]) -> str:
    """One call in a turn: the recorded result if a replay finds one, else run (at most once if the tool is
    not idempotent), record, and only then answer."""
    key = ctx.edit_key(d.name, values)
    calls = ToolCalls(ctx.ws)
    mid = ctx.message.id
    prior = await asyncio.to_thread(calls.lookup, mid, key)
    if prior is not None and prior["state"] == "finished":
        result = Result(prior.get("output"), prior.get("error"), prior.get("exit_code"), prior.get("duration_ms", 0))
        return answer(result, key, replayed=True)
    if prior is not None and not d.spec.idempotent:
        result = Result(
            None,
            f"{d.name}: this call was started before an interruption and may or may not have finished; it is "
            "not run again (the tool is not idempotent): check its effect before calling it again",
            None,
            0,
        )
    else:
        if not d.spec.idempotent:
            await asyncio.to_thread(calls.started, mid, key, d.name)
            crashpoint("after_tool_started")
        result = await execute(ctx.ws, d, values, agent=ctx.agent.name, call=key, env=ctx.env)
        crashpoint("after_tool_exit")
    await asyncio.to_thread(calls.finished, mid, key, d.name, result.to_json())
    return answer(result, key, replayed=False)


def answer(result: Result, key: str, *, replayed: bool) -> str:
    trace = {
        "call_key": key,
        "exit_code": result.exit_code,
        "command_ms": result.duration_ms,
        "timed_out": result.timed_out,
        "replayed": replayed,
    }
    if result.error is not None:
        raise CommandFailed(result.error, trace)
    return Traced(result.output or "", trace)
