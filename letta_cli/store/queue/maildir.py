"""The maildir backend: a spool under .agents/queue/, one immutable JSON file a message.

A message's state is the folder it sits in, moved by atomic rename:

    tmp/ --link--> new/<id>.json --claim--> cur/<id>[.a<N-1>].json --begin--> cur/<id>.a<N>.json --ack--> (gone)
                      ^                                                     |--retry--> new/<id>.a<N>.json
                      |                                                     `--dead---> dead/<id>.json + .error.json
                      `------------------- recover() ----------------------'            corrupt/<name> + .error.txt

The attempt count lives in the file name. A claim keeps the count of the attempts made so far; begin (one
rename, just before the model is called) counts this one. So a process killed during its start-up never
uses up a message's attempts, and one killed by the message itself does. This module is the only code that
knows these names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from letta_cli.core.errors import NotFound
from letta_cli.core.faults import crashpoint, failpoint
from letta_cli.core.ids import now
from letta_cli.core.models import Message
from letta_cli.core.pids import pid_alive
from letta_cli.store.fsio import (
    atomic_write,
    atomic_write_json,
    check_dir,
    ensure_dir,
    fsync_dir,
    storage_errors,
    write_tmp,
)
from letta_cli.store.queue.interface import STATES, Claimed, Entry, QueueItem, State

FOLDERS = ("tmp", *STATES)
NAME_RE = re.compile(r"^(?P<id>[0-9a-f-]{36})(?:\.a(?P<attempts>\d+))?\.json$")
NOTES = (".error.json", ".error.txt")  # a dead letter's reason, a corrupt file's reason


class MaildirQueue:
    def __init__(self, root: Path):
        self.root = root
        self.dirs = {name: root / name for name in FOLDERS}

    def setup(self) -> MaildirQueue:
        for path in self.dirs.values():
            ensure_dir(path)
        return self

    # --- producers ---------------------------------------------------------------------------------

    def publish(self, message: Message) -> None:
        self.publish_many([message])

    def publish_many(self, messages: list[Message], io: Executor | None = None) -> None:
        """Files written and fsynced (concurrently on `io`), linked into new/, then one fsync of new/ for all."""
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
        return {n[:36] for d in ("new", "cur", "dead") for n in self._names(d) if NAME_RE.match(n)}

    def known(self, message_id: str) -> bool:
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

    def peek(self, entry: Entry) -> Message | None:
        try:
            return self.read(self.dirs["new"] / entry.name)
        except FileNotFoundError:
            return None

    def read(self, path: Path) -> Message:
        return Message.model_validate_json(path.read_bytes())

    def claim(self, entry: Entry) -> Claimed | None:
        attempts = entry.attempts + 1
        dst = self.dirs["cur"] / entry.name  # the count so far: this attempt counts once it begins
        with storage_errors("the queue"):
            os.rename(self.dirs["new"] / entry.name, dst)
            fsync_dir(self.dirs["cur"])
        crashpoint("after_claim")
        try:
            message = Message.model_validate_json(dst.read_bytes())
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            self._quarantine(dst, f"unreadable message file: {str(exc).splitlines()[0]}")
            return None
        if message.id != entry.id:
            self._quarantine(dst, f"file name says {entry.id} but the message id is {message.id}")
            return None
        return Claimed(message, attempts, str(dst))

    def begin(self, claimed: Claimed) -> None:
        """No fsync: a process kill keeps the rename (a power cut may forget it: one attempt forgiven)."""
        if claimed.begun:
            return
        dst = self.dirs["cur"] / f"{claimed.message.id}.a{claimed.attempts}.json"
        with storage_errors("the queue"):
            os.rename(claimed.path, dst)
        claimed.handle, claimed.begun = str(dst), True
        crashpoint("after_begin")

    def in_flight(self, claimed: Claimed) -> bool:
        return claimed.path.exists()

    def ack(self, claimed: Claimed) -> None:
        """No fsync: the turn record is the proof the message was handled, so a resurrected file is a no-op."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(claimed.path)
        crashpoint("after_ack")

    def retry(self, claimed: Claimed, delay: float) -> None:
        """The not-before time is kept in the file's mtime."""
        dst = self.dirs["new"] / f"{claimed.message.id}.a{claimed.attempts}.json"
        when = time.time() + delay
        with storage_errors("the queue"):
            os.utime(claimed.path, (when, when))
            os.rename(claimed.path, dst)
            fsync_dir(self.dirs["new"])

    def release(self, claimed: Claimed) -> None:
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

    def _quarantine(self, path: Path, reason: str) -> None:
        dst = self.dirs["corrupt"] / path.name
        with storage_errors("the queue"):
            os.rename(path, dst)
            fsync_dir(self.dirs["corrupt"])
        atomic_write(self.dirs["corrupt"] / f"{path.name}.error.txt", reason + "\n")

    def quarantine_strays(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                self._quarantine(self.dirs["new"] / name, "not a message file name")

    def recover(self) -> int:
        """Also drops the temp files of producers that died between their write and their link."""
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

    # --- repairs -----------------------------------------------------------------------------------

    def requeue_dead(self, message_id: str) -> None:
        """Safe while a scheduler runs: one atomic rename publishes the message to new/."""
        check_dir(self.dirs["new"])
        check_dir(self.dirs["dead"])
        try:
            with storage_errors("the queue"):
                os.rename(self.dirs["dead"] / f"{message_id}.json", self.dirs["new"] / f"{message_id}.json")
                fsync_dir(self.dirs["new"])
        except FileNotFoundError:
            raise NotFound(f"no dead letter {message_id} in {self.root}") from None
        with contextlib.suppress(FileNotFoundError):
            (self.dirs["dead"] / f"{message_id}.error.json").unlink()

    def purge_dead(self) -> list[str]:
        check_dir(self.dirs["dead"])
        removed = []
        with storage_errors("the queue"):
            for name in self._names("dead"):
                m = NAME_RE.match(name)
                if m and not name.endswith(NOTES):
                    for doomed in (name, f"{m['id']}.error.json"):
                        with contextlib.suppress(FileNotFoundError):
                            (self.dirs["dead"] / doomed).unlink()
                    removed.append(m["id"])
            if removed:
                fsync_dir(self.dirs["dead"])
        return removed

    # --- inspection --------------------------------------------------------------------------------

    def _message_names(self, folder: str) -> list[str]:
        return sorted(n for n in self._names(folder) if not n.startswith(".") and not n.endswith(NOTES))

    def depths(self) -> dict[str, int]:
        return {folder: sum(1 for n in self._message_names(folder) if n.endswith(".json")) for folder in STATES}

    def items(self, states: tuple[State, ...] = STATES) -> list[QueueItem]:
        found: list[QueueItem] = []
        for state in states:
            found.extend(i for name in self._message_names(state) if (i := self._item(state, name)) is not None)
        return found

    def find(self, message_id: str) -> QueueItem | None:
        for state in STATES:
            for name in self._message_names(state):
                m = NAME_RE.match(name)
                if m and m["id"] == message_id and (item := self._item(state, name)) is not None:
                    return item
        return None

    def dead_reason(self, message_id: str) -> str | None:
        return self._dead_note(message_id).get("error")

    def _dead_note(self, message_id: str) -> dict[str, Any]:
        try:
            note = json.loads((self.dirs["dead"] / f"{message_id}.error.json").read_text())
        except (OSError, ValueError):
            return {}
        return note if isinstance(note, dict) else {}

    def _item(self, state: State, name: str) -> QueueItem | None:
        path = self.dirs[state] / name
        try:
            stored_at = path.stat().st_mtime
            raw = path.read_bytes()
        except FileNotFoundError:
            return None  # claimed or moved while we looked
        m = NAME_RE.match(name)
        attempts = int(m["attempts"] or 0) if m else None
        try:
            message: Message | None = Message.model_validate_json(raw)
        except (ValidationError, ValueError, UnicodeDecodeError):
            message = None
        reason = None
        if state == "dead":
            note = self._dead_note(m["id"] if m else name)
            reason, attempts = note.get("error"), note.get("attempts", attempts)
        elif state == "corrupt":
            with contextlib.suppress(OSError):
                reason = (self.dirs["corrupt"] / f"{name}.error.txt").read_text().strip()
        return QueueItem(
            id=m["id"] if m else name,
            state=state,
            name=name,
            location=str(path),
            attempts=attempts,
            message=message,
            raw=raw,
            stored_at=stored_at,
            not_before=stored_at if state == "new" and attempts else None,
            reason=reason,
        )


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
    return m is not None and int(m.group(1)) != os.getpid() and pid_alive(int(m.group(1)))
