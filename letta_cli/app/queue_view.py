"""The queue as `agents queue` shows it, and its two repairs (a dead letter retried, dead letters purged),
all through the queue's verbs: nothing here knows how or where a message is stored."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from letta_cli.app.refs import clean_ref, matches
from letta_cli.core.errors import Conflict, InvalidFile, NotFound, UsageError
from letta_cli.core.ids import now
from letta_cli.store.queue import STATES, QueueItem, State, open_queue
from letta_cli.store.records import TurnRecords
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace

FOLDERS: tuple[State, ...] = STATES  # what the CLI calls the states: the folders of the maildir backend


def _item_json(item: QueueItem, clock: float) -> dict[str, Any]:
    msg = item.message
    if msg is not None:
        age = (now() - msg.created_at).total_seconds()
    else:
        age = clock - item.stored_at
    return {
        "id": item.id,
        "folder": item.state,
        "file": item.name,
        "attempts": item.attempts,
        "sender": msg.sender if msg else None,
        "recipient": msg.recipient if msg else None,
        "kind": msg.kind if msg else None,
        "chain_id": msg.chain_id if msg else None,
        "created_at": msg.created_at.isoformat() if msg else None,
        "age_seconds": round(max(0.0, age), 1),
        "not_before": datetime.fromtimestamp(item.not_before, UTC).isoformat()
        if item.not_before is not None and item.not_before > clock
        else None,
        "error": item.reason,
    }


def queue_items(ws: Workspace, folders: tuple[State, ...] = FOLDERS) -> list[dict[str, Any]]:
    """Every message in these states, oldest first within each (UsageError for an unknown state)."""
    for folder in folders:
        if folder not in FOLDERS:
            raise UsageError(f"{folder!r}: choose one of {', '.join(FOLDERS)}")
    clock = time.time()
    return [_item_json(i, clock) for i in open_queue(ws.queue_dir).items(folders)]


def _one(ws: Workspace, ref: str) -> QueueItem:
    ref = clean_ref(ref)
    found = [i for i in open_queue(ws.queue_dir).items() if matches(i.id, ref)]
    if not found:
        raise NotFound(f"no message {ref!r} in the queue ({ws.queue_dir})")
    if len({i.id for i in found}) > 1:
        raise UsageError(f"{ref!r} matches {len(found)} messages; give more of the id")
    return found[0]


def queue_item(ws: Workspace, ref: str) -> dict[str, Any]:
    """One message in the queue (by id, or 8+ characters of its beginning or end), with what is stored and
    where, and why it died."""
    item = _one(ws, ref)
    data = _item_json(item, time.time())
    try:
        data["message"] = json.loads(item.raw) if item.raw is not None else None
    except (ValueError, UnicodeDecodeError):
        data["message"] = None
    data["path"] = item.location
    return data


def requeue_dead(ws: Workspace, ref: str) -> dict[str, Any]:
    """Give a dead letter another chance: back to new with its attempts reset.

    Safe while a scheduler runs: the dead turn record goes first (else the scheduler would find it and
    dead-letter the message again at once), then the queue publishes the message again in one step.
    """
    item = _one(ws, ref)
    if item.state != "dead":
        raise Conflict(f"message {item.id} is in {item.state}/, not dead/; only dead letters can be retried")
    records = TurnRecords(ws.turns_dir)
    try:
        record = records.get(item.id)
    except InvalidFile:  # a dead letter's record that does not parse (a bug of ours buried it): start afresh
        records.discard(item.id)
        record = None
    if record is not None and record.status == "dead":
        records.discard(item.id)
    open_queue(ws.queue_dir).setup().requeue_dead(item.id)
    msg = item.message
    Trace(ws.trace_path).emit(
        "requeue",
        message_id=item.id,
        chain_id=msg.chain_id if msg else None,
        agent=msg.recipient if msg else None,
        by="cli",
    )
    return {"message_id": item.id, "from": "dead", "to": "new", "attempts": 0}


def dead_count(ws: Workspace) -> int:
    return open_queue(ws.queue_dir).depths()["dead"]


def purge_dead(ws: Workspace) -> list[str]:
    """Delete every dead letter and its reason. Their turn records (status dead) stay as the proof."""
    return open_queue(ws.queue_dir).purge_dead()
