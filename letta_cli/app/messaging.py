"""What `agents send`, `broadcast` and `run` do, as library calls: publish, wait, and serve when no one does.

A waiting sender hands its messages to the scheduler daemon (app/daemon, started on demand, exits when idle):
it publishes, says so over the daemon's socket and waits for the reply, with its own environment for the turns.
Without a daemon (AGENTS_DAEMON=0, or another scheduler runs, or none could start) a waiting sender that finds no
scheduler running takes the scheduler lock and serves the queue itself until its reply is ready (then finishes
the chains it started).

Each command is a function (send, broadcast) and, for a caller that shows progress while it waits, the same
in two steps: publish, then collect the replies.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from letta_cli.app import daemon_client
from letta_cli.core.errors import (
    Conflict,
    Interrupted,
    InvalidFile,
    NotFound,
    StorageError,
    UsageError,
    WaitTimeout,
)
from letta_cli.core.ids import new_id
from letta_cli.core.models import USER, Message, MessageKind, TurnRecord
from letta_cli.store import scheduler_lock
from letta_cli.store.agents import AgentStore
from letta_cli.store.queue import open_queue
from letta_cli.store.records import TurnRecords
from letta_cli.store.trace import Listener, Trace
from letta_cli.store.workspace import Workspace

if TYPE_CHECKING:  # the engine (asyncio, the openai SDK) is imported only by a process that serves
    from letta_cli.engine.scheduler import Mode

WAIT_POLL_SECONDS = 0.05
HANDOVER_TRIES = 3  # `agents run` stopping scheduler daemons that waiting senders keep starting

Poll = Callable[[], None]


def check_agent(ws: Workspace, name: str) -> None:
    """NotFound (or InvalidFile) unless the agent exists and its file is valid."""
    AgentStore(ws).get(name)


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
    wait: bool = True,
) -> list[Message]:
    """Publish one message per recipient, all in one chain, durably; returns once they are on disk.
    `wait`: the caller will wait for the replies (then a scheduler daemon is started if none runs; a running
    one is told whose environment these turns use either way)."""
    ws.ensure_state()
    check_body(ws, body)
    check_sender(ws, sender)
    store = AgentStore(ws)
    for name in recipients:
        store.get(name)
    queue, trace = open_queue(ws.queue_dir).setup(), Trace(ws.trace_path)
    chain = new_id()
    if force_tool is not None:
        from letta_cli.tools.registry import builtin_tools

        if force_tool not in builtin_tools():
            raise UsageError(f"unknown tool {force_tool!r}; built-in tools: {', '.join(builtin_tools())}")
    messages = [
        Message(recipient=r, body=body, sender=sender, kind=kind, chain_id=chain, force_tool=force_tool)
        for r in recipients
    ]
    daemon_client.announce(ws, [chain], start=wait)
    if len(messages) == 1:
        queue.publish(messages[0])
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(16, len(messages))) as io:  # overlaps the fsyncs of a fan-out
            queue.publish_many(messages, io)
    with contextlib.suppress(StorageError):  # the messages are durable: failing now would invite a resend
        for message in messages:
            trace.published(message)
    return messages


def queued(messages: list[Message]) -> list[dict[str, Any]]:
    """What a command that does not wait reports: each message id, and where it went."""
    return [{"agent": m.recipient, "message_id": m.id, "status": "queued"} for m in messages]


def run_scheduler(
    ws: Workspace,
    mode: Mode = "drain",
    until: set[str] | None = None,
    deadline: float | None = None,
    on_event: Listener | None = None,
    *,
    interruptible: bool = False,
    take_over: bool = False,
) -> int:
    """Hold the scheduler lock and serve. Raises Conflict if another scheduler runs; with `take_over` (the
    user's `agents run`), a scheduler daemon that sends started is stopped first and this process serves.
    `on_event` sees every trace event this process emits while serving. With `interruptible` (a waiting
    command), a SIGINT or SIGTERM that stops the serving raises Interrupted: the messages stay queued."""
    import asyncio

    from letta_cli.engine.scheduler import Scheduler

    for _ in range(HANDOVER_TRIES):
        with scheduler_lock.hold(ws) as got:
            if got:
                scheduler = Scheduler(ws, mode=mode, until=until)
                scheduler.deadline = deadline
                if on_event is not None:
                    scheduler.trace = Trace(ws.trace_path, listener=on_event)
                handled = asyncio.run(scheduler.serve())
                if interruptible and scheduler.signalled is not None:
                    name = signal.Signals(scheduler.signalled).name
                    raise Interrupted(scheduler.signalled, f"stopped by {name}; unanswered messages stay queued")
                return handled
        pid = scheduler_lock.holder_pid(ws)
        if not (take_over and pid is not None and daemon_client.is_daemon(pid) and daemon_client.stop(ws)):
            break
        # the daemon has stopped (its running turns went back to the queue); a waiting sender may have
        # started another before we took the lock: then that one is stopped in turn
    pid = scheduler_lock.holder_pid(ws)
    who = "" if pid is None else f" (pid {pid})"
    if pid is not None and daemon_client.is_daemon(pid):
        who = f" (the scheduler daemon, pid {pid}: `agents stop` stops it)"
    raise Conflict(f"a scheduler is already running in {ws.root}{who}")


def wait(
    ws: Workspace,
    message_ids: list[str],
    timeout: float | None = None,
    serve: bool = True,
    on_poll: Poll | None = None,
    on_event: Listener | None = None,
    chains: list[str] | None = None,
) -> dict[str, TurnRecord]:
    """Wait for the turn records of `message_ids`: on the scheduler daemon (started if no scheduler runs), else
    serving the queue meanwhile if no scheduler runs. `chains`: the messages' chains, whose turns then use our
    environment. `on_poll` is called while another process serves; `on_event` sees the trace events while we
    serve. Raises WaitTimeout (holding the records that came) when `timeout` seconds pass first."""
    records = TurnRecords(ws.turns_dir)
    deadline = None if timeout is None else time.monotonic() + timeout
    if serve and daemon_client.enabled(ws):
        daemon_client.wait(ws, message_ids, chains or [], deadline, on_poll)  # then as below: records, or serve
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
                run_scheduler(ws, "until", set(message_ids), deadline, on_event, interruptible=True)
                continue
            except Conflict:
                pass  # someone else serves; just wait, and take over if they stop before we are answered
        if on_poll is not None:
            on_poll()
        time.sleep(WAIT_POLL_SECONDS)


# --------------------------------------------------------------------------------------------------- send


@dataclass(frozen=True)
class SendResult:
    """The answer to one message: its turn record (status ok, or why not)."""

    message: Message
    record: TurnRecord

    @property
    def reply(self) -> str:
        return "\n".join(self.record.reply)

    @property
    def ok(self) -> bool:
        return self.record.status == "ok"

    @property
    def failure(self) -> str | None:
        """One line saying why the turn did not answer, or None."""
        return None if self.ok else f"{self.message.recipient}: {self.record.status}: {self.record.error}"

    def as_json(self) -> dict[str, Any]:
        usage = self.record.usage
        return {
            "message_id": self.message.id,
            "agent": self.message.recipient,
            "reply": self.reply,
            "status": self.record.status,
            "error": self.record.error,
            "usage": usage.model_dump() | {"total_tokens": usage.total_tokens},
        }


def collect_reply(
    ws: Workspace,
    message: Message,
    timeout: float | None = None,
    *,
    on_poll: Poll | None = None,
    on_event: Listener | None = None,
) -> SendResult:
    """Wait for the reply to a published message (WaitTimeout after `timeout` seconds)."""
    records = wait(ws, [message.id], timeout, on_poll=on_poll, on_event=on_event, chains=[message.chain_id])
    return SendResult(message, records[message.id])


def send(
    ws: Workspace,
    name: str,
    body: str,
    *,
    sender: str = USER,
    force_tool: str | None = None,
    timeout: float | None = None,
) -> SendResult:
    """`agents send`: publish one message to `name` and wait for its reply."""
    [message] = publish(ws, [name], body, sender=sender, force_tool=force_tool)
    return collect_reply(ws, message, timeout)


# ---------------------------------------------------------------------------------------------- broadcast

Outcome = Literal["answered", "failed", "timeout"]


@dataclass(frozen=True)
class Reply:
    agent: str
    message_id: str
    reply: str
    error: str | None  # None: answered


@dataclass(frozen=True)
class BroadcastResult:
    """Every recipient's reply (or why there is none), and how the broadcast ended: every agent answered,
    some failed, or the timeout came first (`timed_out` then says so; the rest stay queued)."""

    replies: list[Reply]
    timed_out: WaitTimeout | None

    @property
    def outcome(self) -> Outcome:
        if self.timed_out is not None:
            return "timeout"
        return "failed" if any(r.error is not None for r in self.replies) else "answered"

    def rows(self) -> list[dict[str, Any]]:
        return [{"agent": r.agent, "reply": r.reply, "error": r.error} for r in self.replies]


def broadcast_targets(ws: Workspace, tags: list[str], sender: str = USER) -> list[str]:
    """The agents having every tag, but the sender. UsageError without tags, NotFound without agents."""
    if not tags:
        raise UsageError("no tags: give at least one tag")
    report = AgentStore(ws).matching(tags)
    if report.errors:  # a broken file may be one of the targets: send to none rather than to some, silently
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        raise InvalidFile(f"{report.errors[0]}{more}; fix it before broadcasting (nothing was sent)")
    names = [a.name for a in report.agents if a.name != sender]
    if not names:
        raise NotFound(f"no agent has all of the tags {', '.join(tags)}")
    return names


def collect_replies(
    ws: Workspace,
    messages: list[Message],
    timeout: float | None = None,
    *,
    on_poll: Poll | None = None,
    on_event: Listener | None = None,
) -> BroadcastResult:
    """Wait for the replies to published messages; on timeout, the replies that came in time."""
    timed_out: WaitTimeout | None = None
    try:
        chains = list(dict.fromkeys(m.chain_id for m in messages))
        records = wait(ws, [m.id for m in messages], timeout, on_poll=on_poll, on_event=on_event, chains=chains)
    except WaitTimeout as exc:
        timed_out, records = exc, exc.records
    missing = f"no reply within {timeout:g}s (still queued)" if timed_out else "no reply"
    replies = []
    for m in messages:
        rec = records.get(m.id)
        error = missing if rec is None else None if rec.status == "ok" else rec.error
        replies.append(Reply(m.recipient, m.id, "\n".join(rec.reply) if rec else "", error))
    return BroadcastResult(replies, timed_out)


def broadcast(
    ws: Workspace, tags: list[str], body: str, *, sender: str = USER, timeout: float | None = None
) -> BroadcastResult:
    """`agents broadcast`: one message to every agent having all the tags, and every reply."""
    messages = publish(ws, broadcast_targets(ws, tags, sender), body, sender=sender, kind="broadcast")
    return collect_replies(ws, messages, timeout)
