"""The scheduler lock: .agents/scheduler.lock, held (flock) by the one process that runs turns in a
workspace, and .agents/scheduler.pid, which names that process for `agents status` and error messages."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from letta_cli.store.fsio import atomic_write, locked
from letta_cli.store.workspace import Workspace


@contextlib.contextmanager
def hold(ws: Workspace) -> Iterator[bool]:
    """Take the lock without waiting: yields True (and records our pid) or False if another process holds it."""
    ws.ensure_state()
    with locked(ws.scheduler_lock, blocking=False) as got:
        if got:
            atomic_write(_pid_file(ws), f"{os.getpid()}\n", sync_dir=False)
        yield got


def is_held(ws: Workspace) -> bool:
    """Does a scheduler run in this workspace? (Never creates .agents/.)"""
    if not ws.scheduler_lock.exists():
        return False
    with locked(ws.scheduler_lock, blocking=False) as got:
        return not got


def holder_pid(ws: Workspace) -> int | None:
    """The pid the last scheduler recorded (it may have ended since: ask is_held first)."""
    try:
        return int(_pid_file(ws).read_text())
    except (OSError, ValueError):
        return None


def _pid_file(ws: Workspace) -> Path:
    return ws.state_dir / "scheduler.pid"
