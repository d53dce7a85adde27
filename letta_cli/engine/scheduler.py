"""The single-process scheduler: claims messages, runs turns concurrently on one asyncio loop, commits them.

Guarantees:
- one process runs turns (the caller holds the scheduler lock); one turn per agent at a time, in arrival order;
- a message is handled once in effect: its turn's record is committed atomically, then applied idempotently
  (history, outbox, ack), so a kill -9 at any point leads to a replay that changes nothing twice;
- a wait that would close a waits-for cycle is refused; waits time out; a clean stop gives messages back.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from letta_cli.core.errors import AgentsError, StorageError, ToolError
from letta_cli.core.faults import crashpoint
from letta_cli.core.models import Message, TurnRecord, Usage
from letta_cli.engine.turn import run_turn
from letta_cli.engine.waits import WaitsFor
from letta_cli.model.client import ModelClient, describe, is_permanent, redact
from letta_cli.model.endpoint import resolve_endpoint
from letta_cli.ports import TurnContext
from letta_cli.store import history
from letta_cli.store.agents import AgentStore
from letta_cli.store.queue import Claimed, Entry, Queue, sweep_temp_files
from letta_cli.store.records import TurnRecords
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace

Mode = Literal["drain", "watch", "until"]
POLL_SECONDS = 0.05  # how often new/ is looked at for messages from other processes


class BudgetExceeded(Exception):
    """A chain (or an agent within it) used up its token budget: the chain stops."""


class Scheduler:
    def __init__(self, ws: Workspace, *, mode: Mode = "drain", until: set[str] | None = None):
        self.ws = ws
        self.mode = mode
        self.until = set(until or ())
        self.limits = ws.config.limits
        self.queue = Queue(ws.queue_dir).setup()
        self.records = TurnRecords(ws.turns_dir)
        self.trace = Trace(ws.trace_path)
        self.store = AgentStore(ws)
        self.client = ModelClient(self.limits.model_timeout, self.limits.model_retries)
        self.waits = WaitsFor()
        self.busy: dict[str, asyncio.Task] = {}  # agent -> its running turn
        self.futures: dict[str, asyncio.Future[TurnRecord]] = {}
        self.chain_turns: Counter[str] = Counter()
        self.chain_tokens: Counter[str] = Counter()
        self.agent_chain_tokens: Counter[tuple[str, str]] = Counter()
        self.active_chains: set[str] = set()
        self.handled = 0
        self.deadline: float | None = None  # monotonic time at which to stop (a waiting `send`'s timeout)
        self._peek_cache: dict[str, tuple[str | None, str | None]] = {}
        self.fatal: BaseException | None = None
        self._slots: asyncio.Semaphore | None = None
        self._io: ThreadPoolExecutor | None = None  # commits and fsyncs overlap here, off the event loop
        self._wake: asyncio.Event | None = None
        self._stopping = False

    # --- the loop ----------------------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until the mode says stop (or a signal). Returns the number of messages handled."""
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self._wake = asyncio.Event()
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agents-io")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        self.queue.recover()
        sweep_temp_files(self.ws.state_dir)
        try:
            while not self._stopping:
                pending = self._pump()
                if self._finished(pending):
                    break
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        if self.fatal is not None:
            raise self.fatal
        return self.handled

    def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def _finished(self, pending: int) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            return True
        if self.mode == "watch" or self.busy:
            return False
        if self.mode == "until" and not self._answered():
            return False
        return pending == 0

    def _answered(self) -> bool:
        """In "until" mode: are all the messages we serve for answered? (Checked once a pump, not per entry.)"""
        self.until = {m for m in self.until if not self.records.exists(m)}
        return not self.until

    def _claimable(self, message_chain: str | None, answered: bool) -> bool:
        """In "until" mode, once our own messages are answered, only finish the chains already started."""
        return self.mode != "until" or not answered or message_chain in self.active_chains

    def _pump(self) -> int:
        """Start a turn for every idle agent whose oldest message is ready. Returns messages still to run."""
        entries, strays = self.queue.scan()
        if strays:
            self.queue.quarantine_strays(strays)
        pending = 0
        blocked: set[str] = set()  # agents whose oldest message cannot start now: the rest wait (FIFO)
        clock = time.time()
        answered = self.mode == "until" and self._answered()
        for entry in entries:
            peeked = self._peek(entry)
            if peeked is None:  # claimed or moved meanwhile
                continue
            recipient, chain = peeked
            if recipient is None:  # unreadable: claiming it quarantines it at once
                self.queue.claim(entry)
                continue
            if recipient in blocked:
                pending += self._claimable(chain, answered)
                continue
            blocked.add(recipient)
            if not self._claimable(chain, answered):
                continue
            if self._stopping or entry.not_before > clock or recipient in self.busy:
                pending += 1
                continue
            claimed = self.queue.claim(entry)
            if claimed is not None:
                self.active_chains.add(claimed.message.chain_id)
                self.busy[recipient] = asyncio.get_running_loop().create_task(self._handle(claimed))
        return pending

    def _peek(self, entry: Entry) -> tuple[str | None, str | None] | None:
        """Recipient and chain of a waiting message (read once, cached by id: files are immutable)."""
        hit = self._peek_cache.get(entry.id)
        if hit is None:
            try:
                msg = self.queue.read(self.queue.dirs["new"] / entry.name)
                hit = (msg.recipient, msg.chain_id)
            except FileNotFoundError:
                return None
            except (ValueError, UnicodeDecodeError):
                hit = (None, None)
            if len(self._peek_cache) > 100_000:
                self._peek_cache.clear()
            self._peek_cache[entry.id] = hit
        return hit

    async def _shutdown(self) -> None:
        tasks = list(self.busy.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()
        if self._io is not None:
            self._io.shutdown(wait=True)

    # --- one message -------------------------------------------------------------------------------

    async def _handle(self, claimed: Claimed) -> None:
        msg = claimed.message
        loop = asyncio.get_running_loop()
        committed = False
        try:
            record = self.records.get(msg.id)
            if record is None:
                record = await self._run(claimed)
                if record is None:  # put back for a retry
                    return
                await loop.run_in_executor(self._io, self._commit, record)
            committed = True
            await loop.run_in_executor(self._io, self._apply, record, claimed)
            self.handled += 1
            future = self.futures.pop(msg.id, None)
            if future is not None and not future.done():
                future.set_result(record)
        except asyncio.CancelledError:
            if not committed and claimed.path.exists():
                with contextlib.suppress(OSError):
                    self.queue.release(claimed)
            raise
        except (StorageError, OSError) as exc:  # the disk refused a write: stop rather than guess
            self.fatal = exc if isinstance(exc, StorageError) else StorageError(f"storage failure: {exc}")
            self.stop()
        finally:
            if self.busy.get(msg.recipient) is asyncio.current_task():
                del self.busy[msg.recipient]
            self._peek_cache.pop(msg.id, None)
            if self._wake is not None:
                self._wake.set()

    def _commit(self, record: TurnRecord) -> None:
        self.records.commit(record)
        crashpoint("after_commit")

    def _final(self, msg: Message, status: str, error: str, attempts: int) -> TurnRecord:
        return TurnRecord(
            message_id=msg.id,
            agent=msg.recipient,
            sender=msg.sender,
            chain_id=msg.chain_id,
            status=status,
            error=error,
            attempts=attempts,
        )

    async def _run(self, claimed: Claimed) -> TurnRecord | None:
        msg, attempts = claimed.message, claimed.attempts
        if attempts > self.limits.max_attempts:
            return self._final(
                msg, "dead", f"gave up after {attempts - 1} attempts (the process died during them)", attempts
            )
        if len(msg.body) > self.limits.max_message_chars:
            return self._final(
                msg,
                "dead",
                f"message is {len(msg.body):,} characters; the limit is {self.limits.max_message_chars:,}",
                attempts,
            )
        try:
            agent = self.store.get(msg.recipient)
        except AgentsError as exc:
            return self._final(msg, "dead", str(exc), attempts)
        if msg.hop > 0:  # messages from the shell start chains; only agent-to-agent turns are budgeted
            if self.chain_turns[msg.chain_id] >= self.limits.chain_turn_budget:
                return self._final(
                    msg, "stopped", f"chain turn budget ({self.limits.chain_turn_budget}) exhausted", attempts
                )
            self.chain_turns[msg.chain_id] += 1
        limits = agent.effective_limits(self.limits)
        ctx = TurnContext(self.ws, self, agent, msg, limits, attempts, self.trace)
        self.trace.emit("turn_start", message_id=msg.id, chain_id=msg.chain_id, agent=agent.name, attempt=attempts)
        try:
            endpoint = resolve_endpoint(self.ws, agent)
            return await run_turn(ctx, self.client, endpoint)
        except asyncio.CancelledError:
            raise
        except BudgetExceeded as exc:
            return self._final(msg, "stopped", str(exc), attempts)
        except StorageError:
            raise
        except Exception as exc:  # model failures, broken memory files, bugs: retried, then dead-lettered
            reason = describe(exc) if not isinstance(exc, AgentsError) else redact(str(exc))
            permanent = isinstance(exc, AgentsError) or is_permanent(exc)
            if permanent or attempts >= self.limits.max_attempts:
                return self._final(msg, "dead", reason, attempts)
            delay = self.limits.retry_backoff * 2 ** (attempts - 1)
            self.trace.emit(
                "retry",
                message_id=msg.id,
                chain_id=msg.chain_id,
                agent=agent.name,
                attempt=attempts,
                error=reason,
                delay=delay,
            )
            self.queue.retry(claimed, delay)
            return None

    def _apply(self, record: TurnRecord, claimed: Claimed) -> None:
        """Make a committed turn's effects real (on the I/O pool). Each step is idempotent, so a replay after a
        crash is safe."""
        msg = claimed.message
        if record.history:  # ok, or ended in error after real work (e.g. the step limit)
            path = self.ws.history_file(record.agent)
            if not history.has_turn(path, record.message_id):
                history.append_turn(path, record.history)
                crashpoint("after_history_append")
        for out in record.outbox:
            self._publish_once(out)
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

    # --- services for turns ------------------------------------------------------------------------

    def _publish_once(self, message: Message) -> None:
        """Publish a message from a turn, once: a replayed turn re-publishes the same ids, which is a no-op."""
        if self.records.exists(message.id) or self.queue.known(message.id):
            return
        self.queue.publish(message)
        self.trace.published(message)

    @contextlib.asynccontextmanager
    async def model_slot(self):
        assert self._slots is not None
        async with self._slots:
            yield

    def charge(self, ctx: TurnContext, usage: Usage) -> None:
        chain, agent = ctx.message.chain_id, ctx.agent.name
        self.chain_tokens[chain] += usage.total_tokens
        self.agent_chain_tokens[(chain, agent)] += usage.total_tokens
        if self.limits.chain_token_budget and self.chain_tokens[chain] > self.limits.chain_token_budget:
            raise BudgetExceeded(f"chain token budget ({self.limits.chain_token_budget}) exceeded")
        if self.limits.agent_token_budget and self.agent_chain_tokens[(chain, agent)] > self.limits.agent_token_budget:
            raise BudgetExceeded(
                f"agent {agent!r} token budget ({self.limits.agent_token_budget}) exceeded in this chain"
            )

    async def request(self, ctx: TurnContext, message: Message) -> TurnRecord:
        """Send a request and suspend the calling turn (not the loop) until the target's turn ends."""
        outcome = (await self.gather(ctx, [message], 1))[0]
        if isinstance(outcome, str):
            raise ToolError(outcome)
        return outcome

    async def gather(self, ctx: TurnContext, messages: list[Message], limit: int) -> list[TurnRecord | str]:
        """Send requests, at most `limit` outstanding, and collect each reply (or an error text)."""
        outcomes: dict[str, TurnRecord | str] = {}
        for start in range(0, len(messages), max(1, limit)):
            chunk = messages[start : start + max(1, limit)]
            outcomes.update(await self._gather_chunk(ctx, chunk))
        return [outcomes[m.id] for m in messages]

    async def _gather_chunk(self, ctx: TurnContext, messages: list[Message]) -> dict[str, TurnRecord | str]:
        outcomes: dict[str, TurnRecord | str] = {}
        accepted: list[Message] = []
        for message in messages:  # a request that would close a waits-for cycle is never sent
            try:
                self.waits.add(ctx.agent.name, message.recipient)
                accepted.append(message)
            except ToolError as exc:
                outcomes[message.id] = str(exc)
        try:
            waits = {m.id: self._future_for(m.id) for m in accepted}
            await self._publish_batch([m for m in accepted if not waits[m.id].done()])
            timeout = ctx.limits.wait_timeout

            async def reply(message: Message) -> TurnRecord | str:
                try:
                    return await asyncio.wait_for(asyncio.shield(waits[message.id]), timeout)
                except TimeoutError:
                    return f"no reply from {message.recipient!r} within {timeout:g}s"

            for message, outcome in zip(accepted, await asyncio.gather(*(reply(m) for m in accepted)), strict=True):
                outcomes[message.id] = outcome
        finally:
            for message in accepted:
                self.waits.remove(ctx.agent.name, message.recipient)
        return outcomes

    def _future_for(self, message_id: str) -> asyncio.Future[TurnRecord]:
        """The future a waiting turn awaits; already done if the reply was committed (a replayed turn)."""
        future = self.futures.get(message_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            record = self.records.get(message_id)
            if record is not None:
                future.set_result(record)
            else:
                self.futures[message_id] = future
        return future

    async def _publish_batch(self, messages: list[Message]) -> None:
        """Publish requests off the event loop, in one batch (one fsync of new/ for all)."""
        known = self.queue.known_ids()
        fresh = [m for m in messages if m.id not in known]
        if fresh:
            # on the default pool: publish_many fans its fsyncs out to self._io and waits for them
            await asyncio.get_running_loop().run_in_executor(None, self.queue.publish_many, fresh, self._io)
            for message in fresh:
                self.trace.published(message)
        if self._wake is not None:
            self._wake.set()
