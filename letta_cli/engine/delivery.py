"""Delivery: what happens once a turn is over. Its record is committed atomically (the commit point), then
applied: history appended, outbox published, trace written, message acked or dead-lettered. Each step of the
apply is idempotent, so a replay after a crash at any point changes nothing twice.

Runs on the I/O pool, never on the event loop (every step writes and fsyncs).
"""

from __future__ import annotations

from concurrent.futures import Executor

from letta_cli.core.faults import crashpoint, failpoint
from letta_cli.core.models import Message, TurnRecord
from letta_cli.store import history
from letta_cli.store.queue import Claimed, MessageQueue
from letta_cli.store.records import TurnRecords
from letta_cli.store.tool_results import ToolCalls
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace


class Delivery:
    def __init__(self, ws: Workspace, queue: MessageQueue, records: TurnRecords, trace: Trace):
        self.ws = ws
        self.queue = queue
        self.records = records
        self.trace = trace

    def commit(self, record: TurnRecord) -> None:
        failpoint("commit")
        self.records.commit(record)
        crashpoint("after_commit")

    def apply(self, record: TurnRecord, claimed: Claimed) -> None:
        """Make a committed turn's effects real."""
        msg = claimed.message
        if record.history:  # ok, or ended in error after real work (e.g. the step limit)
            path = self.ws.history_file(record.agent)
            if not history.has_turn(path, record.message_id):
                history.append_turn(path, record.history)
                crashpoint("after_history_append")
        for out in record.outbox:
            self.publish_once(out)
        self.trace.emit(
            "turn_end",
            message_id=msg.id,
            chain_id=msg.chain_id,
            agent=record.agent,
            status=record.status,
            reply=record.reply,
            error=record.error,
            prompt_tokens=record.usage.prompt_tokens,
            completion_tokens=record.usage.completion_tokens,
            model_calls=record.usage.model_calls,
            duration_ms=round((record.ended_at - record.started_at).total_seconds() * 1000),
            attempts=record.attempts,
        )
        if record.status == "dead":
            self.queue.dead_letter(claimed, record.error or "failed")
        else:
            self.queue.ack(claimed)
        ToolCalls(self.ws).forget(msg.id)  # committed: its command-tool calls will not be replayed

    def publish_once(self, message: Message) -> None:
        """Publish a message from a turn, once: a replayed turn re-publishes the same ids, which is a no-op."""
        if self.records.exists(message.id) or self.queue.known(message.id):
            return
        self.queue.publish(message)
        self.trace.published(message)

    def publish_requests(self, messages: list[Message], io: Executor | None) -> None:
        """Publish a waiting turn's requests in one batch (one fsync of new/ for all), skipping those already
        queued (a replayed turn). The fsyncs fan out to `io`, so call this from another thread than io's."""
        known = self.queue.known_ids()
        fresh = [m for m in messages if m.id not in known]
        if fresh:
            self.queue.publish_many(fresh, io)
            for message in fresh:
                self.trace.published(message)
