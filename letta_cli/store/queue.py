"""The durable message queue: a maildir-style spool under .agents/queue/, one immutable JSON file a message.

A message's state is the folder it sits in, moved by atomic rename:

    tmp/ --link--> new/<id>.json --claim--> cur/<id>.a<N>.json --ack--> (gone; its turn record remains)
                      ^                         |--retry--> new/<id>.a<N>.json (mtime = not before)
                      |                         `--dead---> dead/<id>.json + dead/<id>.error.json
                      `------- recover() -------'           corrupt/ holds files that do not parse

The attempt count lives in the file name, so claiming (one rename) records it durably. Producers take no
lock; only the scheduler (holding the scheduler lock) claims, moves and deletes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from letta_cli.core.faults import crashpoint, failpoint
from letta_cli.core.ids import now
from letta_cli.core.models import Message
from letta_cli.store.fsio import atomic_write, atomic_write_json, ensure_dir, fsync_dir, storage_errors, write_tmp

FOLDERS = ("tmp", "new", "cur", "dead", "corrupt")
NAME_RE = re.compile(r"^(?P<id>[0-9a-f-]{36})(?:\.a(?P<attempts>\d+))?\.json$")


@dataclass(frozen=True)
class Entry:
    """A message file name in new/: its id, how often it was tried, and when it may run."""

    id: str
    attempts: int
    name: str
    not_before: float


@dataclass
class Claimed:
    message: Message
    attempts: int  # including this one
    path: Path


class Queue:
    def __init__(self, root: Path):
        self.root = root
        self.dirs = {name: root / name for name in FOLDERS}

    def setup(self) -> Queue:
        for path in self.dirs.values():
            ensure_dir(path)
        return self

    # --- producers ---------------------------------------------------------------------------------

    def publish(self, message: Message) -> Path:
        """Make a message durable in new/. Returns only once it is on disk. Re-publishing an id is a no-op."""
        self.publish_many([message])
        return self.dirs["new"] / f"{message.id}.json"

    def publish_many(self, messages: list[Message], io: Executor | None = None) -> None:
        """Publish a batch durably: files written and fsynced (concurrently on `io`), linked into new/, then
        one fsync of new/ for all of them. Returns only once every message is on disk."""
        self.setup()

        def stage(message: Message) -> tuple[Message, Path]:
            tmp = write_tmp(self.dirs["tmp"], message.model_dump_json().encode(), prefix=f"{message.id}.")
            crashpoint("after_publish_write")
            return message, tmp

        with storage_errors("the queue"):
            staged = list(io.map(stage, messages)) if io is not None and len(messages) > 1 else map(stage, messages)
            for message, tmp in staged:
                try:
                    failpoint("link")
                    os.link(tmp, self.dirs["new"] / f"{message.id}.json")
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
                crashpoint("after_link")
            fsync_dir(self.dirs["new"])

    def known_ids(self) -> set[str]:
        """Ids of every message in new/, cur/ or dead/ (one listing each, for checking a batch)."""
        return {n[:36] for d in ("new", "cur", "dead") for n in self._names(d) if NAME_RE.match(n)}

    def known(self, message_id: str) -> bool:
        """Is a message with this id anywhere in the queue? (The scheduler uses this for idempotent sends.)"""
        if (self.dirs["new"] / f"{message_id}.json").exists() or (self.dirs["dead"] / f"{message_id}.json").exists():
            return True
        return any(e.startswith(message_id) for d in ("new", "cur") for e in self._names(d))

    # --- the scheduler -----------------------------------------------------------------------------

    def _names(self, folder: str) -> list[str]:
        try:
            return os.listdir(self.dirs[folder])
        except FileNotFoundError:
            return []

    def scan(self) -> tuple[list[Entry], list[str]]:
        """Messages waiting in new/, oldest first, and names that are not message files."""
        entries, strays = [], []
        for name in self._names("new"):
            m = NAME_RE.match(name)
            if not m:
                if not name.startswith("."):
                    strays.append(name)
                continue
            attempts = int(m["attempts"] or 0)
            not_before = 0.0
            if attempts:
                with contextlib.suppress(FileNotFoundError):
                    not_before = os.stat(self.dirs["new"] / name).st_mtime
            entries.append(Entry(m["id"], attempts, name, not_before))
        entries.sort(key=lambda e: e.id)
        return entries, strays

    def claim(self, entry: Entry) -> Claimed | None:
        """Move a message to cur/, counting the attempt. None if it turned out corrupt (quarantined)."""
        attempts = entry.attempts + 1
        dst = self.dirs["cur"] / f"{entry.id}.a{attempts}.json"
        with storage_errors("the queue"):
            os.rename(self.dirs["new"] / entry.name, dst)
            fsync_dir(self.dirs["cur"])
        crashpoint("after_claim")
        try:
            message = Message.model_validate_json(dst.read_bytes())
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            self.quarantine(dst, f"unreadable message file: {str(exc).splitlines()[0]}")
            return None
        if message.id != entry.id:
            self.quarantine(dst, f"file name says {entry.id} but the message id is {message.id}")
            return None
        return Claimed(message, attempts, dst)

    def ack(self, claimed: Claimed) -> None:
        """Forget a handled message. Its turn record is the proof it was handled, so no fsync is needed."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(claimed.path)
        crashpoint("after_ack")

    def retry(self, claimed: Claimed, delay: float) -> None:
        """Put a failed message back, not to run before `delay` seconds from now (kept in its mtime)."""
        dst = self.dirs["new"] / f"{claimed.message.id}.a{claimed.attempts}.json"
        when = time.time() + delay
        with storage_errors("the queue"):
            os.utime(claimed.path, (when, when))
            os.rename(claimed.path, dst)
            fsync_dir(self.dirs["new"])

    def release(self, claimed: Claimed) -> None:
        """Give back a message whose turn was interrupted by a clean stop: the attempt does not count."""
        attempts = claimed.attempts - 1
        suffix = f".a{attempts}" if attempts else ""
        with storage_errors("the queue"):
            os.rename(claimed.path, self.dirs["new"] / f"{claimed.message.id}{suffix}.json")
            fsync_dir(self.dirs["new"])

    def dead_letter(self, claimed: Claimed, reason: str) -> None:
        mid = claimed.message.id
        atomic_write_json(
            self.dirs["dead"] / f"{mid}.error.json",
            {"version": 1, "message_id": mid, "attempts": claimed.attempts, "error": reason, "at": now().isoformat()},
        )
        with storage_errors("the queue"):
            os.rename(claimed.path, self.dirs["dead"] / f"{mid}.json")
            fsync_dir(self.dirs["dead"])

    def requeue_dead(self, message_id: str) -> None:
        """Give a dead letter another chance: back to new/ (attempts reset), its error note removed."""
        with storage_errors("the queue"):
            os.rename(self.dirs["dead"] / f"{message_id}.json", self.dirs["new"] / f"{message_id}.json")
            fsync_dir(self.dirs["new"])
        with contextlib.suppress(FileNotFoundError):
            (self.dirs["dead"] / f"{message_id}.error.json").unlink()

    def purge_dead(self) -> list[str]:
        """Delete every dead letter and its error note; returns their ids."""
        removed = []
        with storage_errors("the queue"):
            for name in self._names("dead"):
                m = NAME_RE.match(name)
                if m and not name.endswith(".error.json"):
                    for doomed in (name, f"{m['id']}.error.json"):
                        with contextlib.suppress(FileNotFoundError):
                            (self.dirs["dead"] / doomed).unlink()
                    removed.append(m["id"])
            if removed:
                fsync_dir(self.dirs["dead"])
        return removed

    def quarantine(self, path: Path, reason: str) -> None:
        """Move an unreadable file to corrupt/ with a note, so it never blocks the queue."""
        dst = self.dirs["corrupt"] / path.name
        with storage_errors("the queue"):
            os.rename(path, dst)
            fsync_dir(self.dirs["corrupt"])
        atomic_write(self.dirs["corrupt"] / f"{path.name}.error.txt", reason + "\n")

    def quarantine_strays(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self.quarantine(self.dirs["new"] / name, "not a message file name")

    def recover(self) -> int:
        """On start: put interrupted work (cur/) back in new/, and drop abandoned temp files."""
        self.setup()
        moved = 0
        for name in self._names("cur"):
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.dirs["cur"] / name, self.dirs["new"] / name)
                moved += 1
        for name in self._names("tmp"):
            if not _writer_alive(name):  # a live producer may be between its write and its link
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.dirs["tmp"] / name)
        if moved:
            fsync_dir(self.dirs["new"])
        return moved

    # --- inspection --------------------------------------------------------------------------------

    def depths(self) -> dict[str, int]:
        return {
            folder: sum(1 for n in self._names(folder) if n.endswith(".json") and not n.endswith(".error.json"))
            for folder in ("new", "cur", "dead", "corrupt")
        }

    def find(self, message_id: str) -> tuple[str, Path] | None:
        for folder in ("new", "cur", "dead", "corrupt"):
            for name in self._names(folder):
                if name.startswith(message_id) and name.endswith(".json") and not name.endswith(".error.json"):
                    return folder, self.dirs[folder] / name
        return None

    def read(self, path: Path) -> Message:
        return Message.model_validate_json(path.read_bytes())

    def dead_reason(self, message_id: str) -> str | None:
        path = self.dirs["dead"] / f"{message_id}.error.json"
        try:
            return json.loads(path.read_text()).get("error")
        except (OSError, ValueError):
            return None


def sweep_temp_files(state_dir: Path) -> int:
    """Remove `.tmp-<pid>-...` files that crashed writers left anywhere under .agents/ (garbage, maybe partial)."""
    removed = 0
    for folder, _dirs, files in os.walk(state_dir):
        for name in files:
            if name.startswith(".tmp-") and not _writer_alive(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


def _writer_alive(tmp_name: str) -> bool:
    """Temp files are named <prefix>.<pid>-<random>: is that pid still running?"""
    m = re.search(r"(?:^\.tmp-|\.)(\d+)-[0-9a-f]+$", tmp_name)
    if not m:
        return False
    try:
        os.kill(int(m.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(m.group(1)) != os.getpid()
