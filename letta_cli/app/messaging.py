"""What `agents send`, `broadcast` and `run` do, as library calls: publish, wait, and serve when no one does.

A waiting sender that finds no scheduler running takes the scheduler lock and serves the queue itself until
its reply is ready (then finishes the chains it started), so shell scripts need no daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from letta_cli.core.errors import Conflict, StorageError, UsageError, WaitTimeout
from letta_cli.core.ids import new_id
from letta_cli.core.models import USER, Message, MessageKind, TurnRecord
from letta_cli.engine.scheduler import Mode, Scheduler
from letta_cli.store.agents import AgentStore
from letta_cli.store.fsio import atomic_write, locked
from letta_cli.store.queue import Queue
from letta_cli.store.records import TurnRecords
from letta_cli.store.trace import Listener, Trace
from letta_cli.store.workspace import Workspace
from letta_cli.tools.registry import builtin_tools

WAIT_POLL_SECONDS = 0.05


def check_sender(ws: Workspace, sender: str) -> str:
    if sender != USER:
        AgentStore(ws).get(sender)
    return sender


def check_body(ws: Workspace, body: str) -> str:
    limit = ws.config.limits.max_message_chars
    if len(body) > limit:
        raise UsageError(f"message is {len(body):,} characters; the limit is {limit:,} (limits.max_message_chars)")
    if not body.strip():
        raise UsageError("message is empty")
    return body


def publish(
    ws: Workspace,
    recipients: list[str],
    body: str,
    *,
    sender: str = USER,
    kind: MessageKind = "user",
    force_tool: str | None = None,
) -> list[Message]:
    """Publish one message per recipient, all in one chain, durably; returns once they are on disk."""
    ws.ensure_state()
    check_body(ws, body)
    check_sender(ws, sender)
    store = AgentStore(ws)
    for name in recipients:
        store.get(name)
    queue, trace = Queue(ws.queue_dir).setup(), Trace(ws.trace_path)
    chain = new_id()
    if force_tool is not None and force_tool not in builtin_tools():
        raise UsageError(f"unknown tool {force_tool!r}; built-in tools: {', '.join(builtin_tools())}")
    messages = [
        Message(recipient=r, body=body, sender=sender, kind=kind, chain_id=chain, force_tool=force_tool)
        for r in recipients
    ]
    with ThreadPoolExecutor(max_workers=min(16, len(messages))) as io:  # overlaps the fsyncs of a fan-out
        queue.publish_many(messages, io)
    with contextlib.suppress(StorageError):  # the messages are durable: failing now would invite a resend
        for message in messages:
            trace.published(message)
    return messages


def run_scheduler(
    ws: Workspace,
    mode: Mode = "drain",
    until: set[str] | None = None,
    deadline: float | None = None,
    on_event: Listener | None = None,
) -> int:
    """Hold the scheduler lock and serve. Raises Conflict if another scheduler runs.
    `on_event` sees every trace event this process emits while serving."""
    ws.ensure_state()
    with locked(ws.scheduler_lock, blocking=False) as got:
        if not got:
            raise Conflict(f"a scheduler is already running in {ws.root}{_holder(ws)}")
        atomic_write(ws.state_dir / "scheduler.pid", f"{os.getpid()}\n", sync_dir=False)
        scheduler = Scheduler(ws, mode=mode, until=until)
        scheduler.deadline = deadline
        if on_event is not None:
            scheduler.trace = Trace(ws.trace_path, listener=on_event)
        return asyncio.run(scheduler.serve())


def scheduler_running(ws: Workspace) -> bool:
    if not ws.scheduler_lock.exists():
        return False
    with locked(ws.scheduler_lock, blocking=False) as got:
        return not got


def _holder(ws: Workspace) -> str:
    try:
        return f" (pid {int((ws.state_dir / 'scheduler.pid').read_text())})"
    except (OSError, ValueError):
        return ""


def wait(
    ws: Workspace,
    message_ids: list[str],
    timeout: float | None = None,
    serve: bool = True,
    on_poll: Callable[[], None] | None = None,
    on_event: Listener | None = None,
) -> dict[str, TurnRecord]:
    """Wait for the turn records of `message_ids`, serving the queue meanwhile if no scheduler runs.
    `on_poll` is called while another process serves; `on_event` sees the trace events while we serve."""
    records = TurnRecords(ws.turns_dir)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = {m: r for m in message_ids if (r := records.get(m)) is not None}
        if len(done) == len(message_ids):
            return done
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(
                f"no reply within {timeout:g}s ({len(done)}/{len(message_ids)} answered); the messages stay queued",
                done,
            )
        if serve:
            try:
                run_scheduler(ws, "until", set(message_ids), deadline, on_event)
                continue
            except Conflict:
                pass  # someone else serves; just wait, and take over if they stop before we are answered
        if on_poll is not None:
            on_poll()
        time.sleep(WAIT_POLL_SECONDS)
