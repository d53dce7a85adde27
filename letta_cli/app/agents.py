"""Agent definitions as library calls: init a workspace, create, list, show, delete, tag and edit agents.

Every change goes through the AgentStore's locked read-modify-write (AgentStore.update; a person's edit:
AgentStore.save_file, refused if the file changed while the editor was open), so a file is only ever written
whole and valid, and two shells never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from letta_cli.core.config import describe_validation
from letta_cli.core.errors import InvalidFile, UsageError
from letta_cli.core.models import AgentDef
from letta_cli.core.names import check_agent_name, check_name
from letta_cli.store.agents import AgentChanged, AgentExists, AgentStore, LoadReport, dump_agent
from letta_cli.store.workspace import Workspace, init_workspace
from letta_cli.tools.registry import builtin_tools

__all__ = [  # AgentExists: what create() raises for a name that is taken (the CLI adds its --force hint)
    "AgentChanged",
    "AgentExists",
    "Draft",
    "agent_json",
    "create",
    "delete",
    "edit",
    "get",
    "init",
    "list_agents",
    "new_agent",
    "parse_assignments",
    "read_text_file",
    "show",
    "tag",
]


def init(root: Path) -> tuple[Workspace, list[str]]:
    """Create agents.d/, agents.toml and .agents/ under `root`; returns the workspace and what was created."""
    return init_workspace(root)


def read_text_file(path: Path) -> str:
    """A text file a command was given (a system prompt, a block's value), as one usage error if unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def agent_json(agent: AgentDef, path: Path | None = None) -> dict[str, Any]:
    """An agent as --json shows it (with the path of its file, when known)."""
    data = agent.model_dump(mode="json")
    if path is not None:
        data["path"] = str(path)
    return data


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
    check_agent_name(name)
    known = builtin_tools()
    for tool in [*(tools or []), *([first_tool] if first_tool else [])]:
        if tool not in known:
            raise UsageError(f"unknown tool {tool!r}; built-in tools: {', '.join(known)}")
    data: dict[str, Any] = {"name": name, "description": description, "tags": tags or []}
    if model:
        data["model"] = model
    if system is not None:
        data["system"] = system
    data["memory"] = {"blocks": {k: {"value": v} for k, v in (memory or {}).items()}, "shared": shared or []}
    if first_tool:
        data["tool_rules"] = {"first": first_tool}
    if tools is not None:
        data["tools"] = tools
    return _validated(name, data)


def _validated(name: str, data: dict[str, Any]) -> AgentDef:
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


def create(ws: Workspace, agent: AgentDef, *, replace: bool = False) -> Path:
    """Save a new agent's file; AgentExists if the name is taken (unless `replace`)."""
    return AgentStore(ws).save(agent, overwrite=replace)


def list_agents(ws: Workspace, tags: list[str] | None = None) -> LoadReport:
    """Every agent (with tags: those having all of them), and one error line per broken file."""
    store = AgentStore(ws)
    return store.matching(tags) if tags else store.load_all()


def get(ws: Workspace, name: str) -> AgentDef:
    return AgentStore(ws).get(name)


def show(ws: Workspace, name: str) -> tuple[AgentDef, Path, str]:
    """An agent, the path of its file, and its definition as TOML."""
    agent = AgentStore(ws).get(name)
    return agent, ws.agent_file(name), dump_agent(agent)


def delete(ws: Workspace, name: str) -> Path:
    """Delete an agent's file (its history and blocks under .agents/ stay); returns the path it had."""
    return AgentStore(ws).delete(name)


def tag(ws: Workspace, name: str, add: list[str] | None = None, remove: list[str] | None = None) -> AgentDef:
    """Remove tags, then add tags (at the end, in order), in one locked read-modify-write; an unchanged file
    is never rewritten."""
    removed, added = set(remove or ()), list(dict.fromkeys(add or ()))

    def change(agent: AgentDef) -> AgentDef:
        tags = [t for t in agent.tags if t not in removed] + [t for t in added if t not in agent.tags]
        return agent if tags == agent.tags else _validated(name, {**agent.model_dump(), "tags": tags})

    return AgentStore(ws).update(name, change)


# --------------------------------------------------------------------------------------------------- edit


@dataclass
class Draft:
    """A copy of an agent's file for a person to edit (`path`); save() keeps the edit if it is valid."""

    ws: Workspace
    name: str
    path: Path
    original: bytes

    @property
    def target(self) -> Path:
        return self.ws.agent_file(self.name)

    def save(self) -> Literal["saved", "unchanged"]:
        """Keep the edit if it is valid and the file is still as the editor opened it. AgentChanged if it
        was changed or deleted meanwhile: nothing is saved, and the edit is kept in a file it names."""
        if self.path.read_bytes() == self.original:
            return "unchanged"
        try:
            AgentStore(self.ws).save_file(self.name, self.path, expected=self.original)
        except InvalidFile as exc:
            reason = str(exc).removeprefix(f"{self.path}: ")
            raise InvalidFile(f"{self.target}: the edit is invalid ({reason}); the file is unchanged") from None
        except AgentChanged as exc:
            kept = Path(tempfile.mkdtemp(prefix="agents-edit-")) / self.path.name
            shutil.copyfile(self.path, kept)
            raise AgentChanged(f"{exc}; your edit was not saved (it is kept in {kept})") from None
        return "saved"


@contextlib.contextmanager
def edit(ws: Workspace, name: str) -> Iterator[Draft]:
    """A draft of agent `name`'s file in a private temp folder, removed afterwards."""
    AgentStore(ws).get(name)
    original = ws.agent_file(name).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / f"{name}.toml"
        draft.write_bytes(original)
        yield Draft(ws, name, draft, original)
