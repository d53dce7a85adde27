"""Changes of many files committed as one (an import): every file is first written to a staging folder,
.agents/staging/<pid>-<id>/files/<its path in the workspace>, then a manifest is written atomically (the
commit point), then each file is hard-linked into place and the folder removed.

A kill before the manifest leaves only the staging folder: recover() deletes it, nothing was visible. A kill
after it leaves a committed change half linked: recover() links the rest (links are idempotent). So a change
is all there or not there at all once recover() has run: at the next import and at every scheduler start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from letta_cli.core.errors import Conflict
from letta_cli.core.faults import crashpoint
from letta_cli.core.ids import new_id
from letta_cli.core.pids import pid_alive
from letta_cli.store.fsio import atomic_write, atomic_write_json, ensure_dir, fsync_dir, storage_errors
from letta_cli.store.workspace import Workspace

MANIFEST = "manifest.json"


class Staged:
    """One change being staged: add() its files, then commit() (which also links them into place)."""

    def __init__(self, ws: Workspace, key: str):
        self.ws, self.key = ws, key
        self.fresh_state = not os.path.lexists(ws.state_dir)
        self.made: list[Path] = []  # folders made for the targets (removed again if the change is aborted)
        ws.ensure_state()
        self.dir = ensure_dir(staging_dir(ws) / f"{os.getpid()}-{new_id()}")
        self.files: list[str] = []

    def add(self, target: Path, data: bytes | str) -> None:
        rel = os.fspath(target.relative_to(self.ws.root))
        atomic_write(self.dir / "files" / rel, data, sync_dir=False)
        self.files.append(rel)

    def commit(self, result: dict[str, Any]) -> dict[str, Any]:
        """The commit point, then the links. Before it, everything that could fail is tried (the target
        folders are made, the targets must not exist): a failure there aborts, leaving nothing behind."""
        try:
            with storage_errors(str(self.dir)):
                for rel in dict.fromkeys(os.path.dirname(r) for r in self.files):
                    fsync_dir(self.dir / "files" / rel)
                    self._make_parent(self.ws.root / rel)
                taken = [rel for rel in self.files if os.path.lexists(self.ws.root / rel)]
                if taken:
                    raise Conflict(f"{self.ws.root / taken[0]} appeared while importing; nothing imported")
                manifest = {"version": 1, "key": self.key, "files": self.files, "result": result}
                atomic_write_json(self.dir / MANIFEST, manifest)
        except BaseException:
            self.abort()
            raise
        crashpoint("after_stage_commit")
        return _link(self.ws, self.dir)

    def _make_parent(self, folder: Path) -> None:
        missing = []
        while not os.path.lexists(folder) and folder != self.ws.root:
            missing.append(folder)
            folder = folder.parent
        ensure_dir(missing[0]) if missing else ensure_dir(folder)
        self.made += reversed(missing)

    def abort(self) -> None:
        """Undo an uncommitted change: the staging folder, the folders made for it, a .agents/ made for it."""
        shutil.rmtree(self.dir, ignore_errors=True)
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        if self.fresh_state:
            shutil.rmtree(self.ws.state_dir, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                staging_dir(self.ws).rmdir()


def staging_dir(ws: Workspace) -> Path:
    return ws.state_dir / "staging"


def recover(ws: Workspace, key: str | None = None) -> dict[str, Any] | None:
    """Finish every committed change left by a dead process, drop every uncommitted one. Returns the result
    recorded by the committed change whose key is `key` (a re-run of the same import), if there was one."""
    folder = staging_dir(ws)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return None
    found = None
    for name in names:
        if _writer_alive(name):
            continue
        path = folder / name
        try:
            manifest = json.loads((path / MANIFEST).read_bytes())
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)  # never committed: nothing of it is visible
            continue
        result = _link(ws, path)
        if key is not None and manifest.get("key") == key:
            found = result
    return found


def _link(ws: Workspace, folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / MANIFEST).read_bytes())
    with storage_errors(str(ws.root)):
        for rel in manifest["files"]:
            target = ws.root / rel
            ensure_dir(target.parent)
            with contextlib.suppress(FileExistsError):  # linked before a crash (or made since: it stays)
                os.link(folder / "files" / rel, target)
            crashpoint("after_stage_link")
        for parent in dict.fromkeys(os.path.dirname(rel) for rel in manifest["files"]):
            fsync_dir(ws.root / parent)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # the last change staged: leave no empty folder
    result: dict[str, Any] = manifest.get("result") or {}
    return result


def _writer_alive(name: str) -> bool:
    pid = name.partition("-")[0]
    return pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid))
