"""Import, step two: read the file, then write a checked plan (shared blocks, agent files, histories) as one
staged change (store/staging): all of it appears, or none of it, even across a kill -9; running the same
import again after a kill finishes the interrupted one instead of refusing it."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letta_cli.app.agentfile.format import MAX_FILE_BYTES, AgentFile, parse_agent_file
from letta_cli.app.agentfile.names import parse_renames
from letta_cli.app.agentfile.plan import ImportPlan, plan_import
from letta_cli.core.errors import UsageError
from letta_cli.core.models import AgentDef, Block
from letta_cli.store import staging
from letta_cli.store.agents import AgentStore, dump_agent
from letta_cli.store.blocks import BlockStore
from letta_cli.store.staging import Staged
from letta_cli.store.workspace import Workspace

STDIN = "-"


def read_source(file: str) -> AgentFile:
    """The agent file at a path, or on stdin for '-' (named <stdin> in errors)."""
    if file == STDIN:
        return parse_agent_file(sys.stdin.buffer.read(MAX_FILE_BYTES + 1), source_name(file))
    path = Path(file)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_agent_file(data, str(path))


def source_name(file: str) -> str:
    return "<stdin>" if file == STDIN else file


@dataclass
class ImportResult:
    plan: ImportPlan
    paths: dict[str, Path]
    recorded: dict[str, Any] | None = None  # what to_json said when an interrupted import was staged

    def to_json(self) -> dict[str, Any]:
        if self.recorded is not None:
            return self.recorded
        plan = self.plan
        return {
            "agents": [
                {
                    "name": a.name,
                    "from": plan.origin[a.name],
                    "path": str(self.paths[a.name]),
                    "private_blocks": list(a.memory.blocks),
                    "shared_blocks": a.memory.shared,
                    "tools": a.tools,
                    "disabled_tools": a.disabled_tools,
                    "history": len(plan.histories.get(a.name, [])),
                }
                for a in plan.agents
            ],
            "shared_blocks": [b.label for b in plan.shared_blocks],
            "warnings": plan.warnings,
        } | self.trusted()

    def trusted(self) -> dict[str, Any]:
        """With --trust-tools: the command tools each agent got, and the files of their code."""
        if not self.plan.tool_files:
            return {}
        tools = {a.name: list(a.command_tools) for a in self.plan.agents if a.command_tools}
        return {"command_tools": tools, "tool_files": list(self.plan.tool_files)}

    def record(self) -> dict[str, Any]:
        """What the staged change keeps, so a re-run after a kill can report this import."""
        plan = self.plan
        return {
            "json": self.to_json(),
            "agents": [a.model_dump(mode="json") for a in plan.agents],
            "origin": plan.origin,
            "shared_blocks": [b.model_dump(mode="json") for b in plan.shared_blocks],
            "warnings": plan.warnings,
            "paths": {name: str(path) for name, path in self.paths.items()},
        }

    @classmethod
    def recall(cls, data: dict[str, Any]) -> ImportResult:
        plan = ImportPlan(
            agents=[AgentDef.model_validate(a) for a in data["agents"]],
            origin=data["origin"],
            shared_blocks=[Block.model_validate(b) for b in data["shared_blocks"]],
            warnings=data["warnings"],
        )
        return cls(plan, {name: Path(p) for name, p in data["paths"].items()}, data["json"])


def apply_import(ws: Workspace, plan: ImportPlan, key: str = "") -> ImportResult:
    """Write a checked plan as one staged change: shared blocks, tool files, agent files, histories."""
    blocks = BlockStore(ws)
    staged = Staged(ws, key)
    try:
        for block in plan.shared_blocks:
            for path, data in blocks.new_files(block, actor="import"):
                staged.add(path, data)
        for rel, code in plan.tool_files.items():  # trusted Python tools (--trust-tools)
            if not (ws.root / rel).exists():
                staged.add(ws.root / rel, code)
        paths = {agent.name: ws.agent_file(agent.name) for agent in plan.agents}
        for agent in plan.agents:
            staged.add(paths[agent.name], dump_agent(agent))
        for name, entries in plan.histories.items():
            staged.add(ws.history_file(name), "".join(e.model_dump_json(exclude_none=True) + "\n" for e in entries))
        result = ImportResult(plan, paths)
    except BaseException:
        staged.abort()  # nothing staged is visible yet
        raise
    staged.commit(result.record())  # all or nothing: it aborts itself before its commit point
    return result


def import_key(af: AgentFile, options: dict[str, Any]) -> str:
    """Names one import (the file and how it is imported): a re-run after a kill has the same key."""
    data = json.dumps([af.model_dump(mode="json", warnings=False), options], sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()


def import_agent_file(
    ws: Workspace,
    af: AgentFile,
    *,
    source: str = "agent file",
    renames: dict[str, str] | None = None,
    prefix: str = "",
    with_history: bool = False,
    trust_endpoints: bool = False,
    trust_tools: bool = False,
) -> ImportResult:
    options = {"renames": renames, "prefix": prefix, "history": with_history}
    key = import_key(af, options | {"endpoints": trust_endpoints, "tools": trust_tools})
    with AgentStore(ws).locked():  # no agent is created under our names between the plan and the commit
        interrupted = staging.recover(ws, key)
        if interrupted is not None:  # this very import was killed after its commit point: now it is complete
            return ImportResult.recall(interrupted)
        plan = plan_import(
            ws,
            af,
            source=source,
            renames=renames,
            prefix=prefix,
            with_history=with_history,
            trust_endpoints=trust_endpoints,
            trust_tools=trust_tools,
        )
        return apply_import(ws, plan, key)


def import_source(
    ws: Workspace,
    file: str,
    *,
    renames: list[str] | None = None,
    prefix: str = "",
    with_history: bool = False,
    trust_endpoints: bool = False,
    trust_tools: bool = False,
) -> ImportResult:
    """`agents import FILE`: read the file (or stdin for '-'), then plan and apply; renames as OLD=NEW."""
    af = read_source(file)
    return import_agent_file(
        ws,
        af,
        source=source_name(file),
        renames=parse_renames(renames or []),
        prefix=prefix,
        with_history=with_history,
        trust_endpoints=trust_endpoints,
        trust_tools=trust_tools,
    )
