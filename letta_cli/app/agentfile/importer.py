"""Import, step two: read the file, then write a checked plan (shared blocks, agent files, histories),
undoing every write if one fails, so the workspace is left as it was."""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from letta_cli.app.agentfile.format import MAX_FILE_BYTES, AgentFile, parse_agent_file
from letta_cli.app.agentfile.names import parse_renames
from letta_cli.app.agentfile.plan import ImportPlan, plan_import
from letta_cli.core.errors import Conflict, UsageError
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.fsio import atomic_write
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

    def to_json(self) -> dict[str, Any]:
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


def apply_import(ws: Workspace, plan: ImportPlan) -> ImportResult:
    """Write a checked plan: shared blocks, then agent files, then histories; on any failure, undo."""
    store, agents = BlockStore(ws), AgentStore(ws)
    fresh = [d for d in (ws.agents_dir, ws.state_dir, ws.root / "tools.d") if not d.exists()]
    fresh_sub = [d for d in (ws.blocks_dir / "shared", ws.blocks_dir, ws.history_dir) if not d.exists()]
    created: list[Path] = []
    paths: dict[str, Path] = {}
    try:
        ws.ensure_state()
        for block in plan.shared_blocks:
            folder = store.path(block.label).parent
            before = set(folder.iterdir()) if folder.is_dir() else set()
            try:
                store.create(block, actor="import")
            finally:  # the block, its change log and its lock file: all new, all ours
                if folder.is_dir():
                    created += sorted(p for p in set(folder.iterdir()) - before if block.label in p.name)
        for rel, code in plan.tool_files.items():  # trusted Python tools (--trust-tools)
            tool_path = ws.root / rel
            if not tool_path.exists():
                atomic_write(tool_path, code)
                created.append(tool_path)
        for agent in plan.agents:
            paths[agent.name] = agents.save(agent)
            created.append(paths[agent.name])
        for name, entries in plan.histories.items():
            path = ws.history_file(name)
            if path.exists():
                raise Conflict(f"agent {name!r} got a history while importing; nothing imported")
            lines = "".join(e.model_dump_json(exclude_none=True) + "\n" for e in entries)
            atomic_write(path, lines)
            created.append(path)
    except BaseException:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in fresh_sub:
            with contextlib.suppress(OSError):
                folder.rmdir()
        for folder in fresh:  # did not exist before this import: all inside is ours
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return ImportResult(plan, paths)


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
    return apply_import(ws, plan)


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
