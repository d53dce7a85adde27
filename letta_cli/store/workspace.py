"""Finding the workspace and naming every path in it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from letta_cli.core.config import CONFIG_TEMPLATE, WorkspaceConfig, load_config
from letta_cli.core.errors import NotFound, UsageError
from letta_cli.core.names import check_name
from letta_cli.store.fsio import atomic_write, confine, ensure_dir

STATE_GITIGNORE = "# runtime state of letta-cli: conversations, queue, blocks\n*\n"


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        confine(self.state_dir)  # a cloned .agents/ may carry symbolic links: no write follows them

    # --- discovery ---------------------------------------------------------------------------------

    @classmethod
    def find(cls, explicit: str | Path | None = None, cwd: Path | None = None) -> Workspace:
        """--workspace, else $AGENTS_HOME, else the nearest folder upward with agents.d/ or agents.toml,
        else the current folder. A workspace named that does not exist is an error (only `agents init`,
        which does not call this, makes one)."""
        given = explicit or os.environ.get("AGENTS_HOME")
        if given:
            root = Path(given).expanduser().resolve()
            if not root.exists():
                raise NotFound(f"no workspace at {root} (agents init {root} makes one)")
            if not root.is_dir():
                raise UsageError(f"workspace {root} is not a folder")
            return cls(root)
        start = (cwd or Path.cwd()).resolve()
        for folder in (start, *start.parents):
            if (folder / "agents.d").is_dir() or (folder / "agents.toml").is_file():
                return cls(folder)
        return cls(start)

    # --- paths -------------------------------------------------------------------------------------

    @property
    def agents_dir(self) -> Path:
        return self.root / "agents.d"

    @property
    def config_path(self) -> Path:
        return self.root / "agents.toml"

    @property
    def state_dir(self) -> Path:
        return self.root / ".agents"

    @property
    def blocks_dir(self) -> Path:
        return self.state_dir / "blocks"

    @property
    def queue_dir(self) -> Path:
        return self.state_dir / "queue"

    @property
    def history_dir(self) -> Path:
        return self.state_dir / "history"

    @property
    def turns_dir(self) -> Path:
        return self.state_dir / "turns"

    @property
    def trace_path(self) -> Path:
        return self.state_dir / "trace.jsonl"

    @property
    def scheduler_lock(self) -> Path:
        return self.state_dir / "scheduler.lock"

    def agent_file(self, name: str) -> Path:
        return self.agents_dir / f"{check_name(name)}.toml"

    def history_file(self, name: str) -> Path:
        return self.history_dir / f"{check_name(name)}.jsonl"

    @cached_property
    def config(self) -> WorkspaceConfig:
        return load_config(self.config_path)

    # --- creation ----------------------------------------------------------------------------------

    def is_initialized(self) -> bool:
        return self.agents_dir.is_dir() or self.config_path.is_file()

    def ensure_state(self) -> Path:
        """Create .agents/ (private, git-ignored) on first use; refuse one that is a symbolic link."""
        fresh = not os.path.lexists(self.state_dir)
        ensure_dir(self.state_dir)
        if fresh:
            atomic_write(self.state_dir / ".gitignore", STATE_GITIGNORE)
        return self.state_dir


def init_workspace(root: Path) -> tuple[Workspace, list[str]]:
    """Create agents.d/, agents.toml and .agents/; existing files are left untouched."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    ws = Workspace(root.resolve())
    created: list[str] = []
    if not ws.agents_dir.is_dir():
        ws.agents_dir.mkdir(parents=True)
        created.append("agents.d/")
    if not ws.config_path.exists():
        atomic_write(ws.config_path, CONFIG_TEMPLATE)
        created.append("agents.toml")
    if not ws.state_dir.is_dir():
        ws.ensure_state()
        created.append(".agents/")
    return ws, created


__all__ = ["Workspace", "WorkspaceConfig", "init_workspace"]
