"""The single-process scheduler: claims messages, runs turns concurrently on one asyncio loop, delivers them.
It is the Runtime (letta_cli.ports) its turns see, and it conducts the parts that each do one job:
intake (what may start), budgets, replies (requests between turns), delivery (commit, then apply) and
retry (what a failure means).

Guarantees:
- one process runs turns (the caller holds the scheduler lock); one turn per agent at a time, in arrival order;
- a message is handled once in effect: its turn's record is committed atomically, then applied idempotently
  (history, outbox, ack), so a kill -9 at any point leads to a replay that changes nothing twice;
- a wait that would close a waits-for cycle is refused; waits time out; a clean stop gives messages back;
- nothing blocks the loop: commits and fsyncs run on an I/O pool, endpoint resolution (which may start the
  local model server and wait for it) in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from letta_cli.core.errors import AgentsError, StorageError
from letta_cli.core.models import Message, TurnRecord, TurnStatus, Usage
from letta_cli.core.text import clip
from letta_cli.engine.budgets import Budgets
from letta_cli.engine.delivery import Delivery
from letta_cli.engine.intake import Intake, Mode
from letta_cli.engine.replies import Replies
from letta_cli.engine.retry import Final, Halt, Retry, internal_reason, judge, storage_failure
from letta_cli.engine.turn import run_turn
from letta_cli.model.client import ModelClient
from letta_cli.model.endpoint import resolve_endpoint
from letta_cli.ports import TurnContext
from letta_cli.store.agents import AgentStore
from letta_cli.store.queue import Claimed, open_queue, sweep_temp_files
from letta_cli.store.records import TurnRecords
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace

__all__ = ["Mode", "Scheduler"]

POLL_SECONDS = 0.05  # how often new/ is looked at for messages from other processes
T = TypeVar("T")


class Scheduler:
    def __init__(self, ws: Workspace, *, mode: Mode = "drain", until: set[str] | None = None):
        self.ws = ws
        self.mode = mode
        self.limits = ws.config.limits
        self.queue = open_queue(ws.queue_dir).setup()
        self.records = TurnRecords(ws.turns_dir)
        self.store = AgentStore(ws)
        self.client = ModelClient(self.limits.model_timeout, self.limits.model_retries)
        self.intake = Intake(self.queue, self.records, mode, until or set())
        self.budgets = Budgets(self.limits)
        self.delivery = Delivery(ws, self.queue, self.records, Trace(ws.trace_path))
        self.replies = Replies(self.records, self._publish_requests)
        self.busy: dict[str, asyncio.Task[None]] = {}  # agent -> its running turn
        self.handled = 0
        self.deadline: float | None = None  # monotonic time at which to stop (a waiting `send`'s timeout)
        self.fatal: BaseException | None = None
        self.signalled: int | None = None  # the signal (SIGINT, SIGTERM) that stopped us, if one did
        self._slots: asyncio.Semaphore | None = None
        self._io: ThreadPoolExecutor | None = None  # commits and fsyncs overlap here, off the event loop
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self.pending = 0  # messages waiting to run, as of the last pump
        # Hooks for a long-lived server (app/daemon): the environment a message's turn reads (None: ours), and
        # a call after each delivered record.
        self.env_for: Callable[[Message], Mapping[str, str] | None] = lambda message: None
        self.on_delivered: Callable[[TurnRecord], None] | None = None

    @property
    def trace(self) -> Trace:
        return self.delivery.trace

    @trace.setter
    def trace(self, trace: Trace) -> None:  # a caller may swap in a Trace with a listener before serving
        self.delivery.trace = trace

    # --- the loop ----------------------------------------------------------------------------------

    async def serve(self) -> int:
        """Run until the mode says stop (or a signal). Returns the number of messages handled."""
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self._wake = asyncio.Event()
        self._io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agents-io")
        self.intake.io = self._io
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self.queue.recover()
        sweep_temp_files(self.ws.state_dir)
        try:
            while not self._stopping:
                self.pending = pending = self._pump()
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

    def _on_signal(self, sig: int) -> None:
        self.signalled = sig
        self.stop()

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def wake(self) -> None:
        """Look at the queue now (new messages were published), not at the next poll."""
        if self._wake is not None:
            self._wake.set()

    def _finished(self, pending: int) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            return True
        if self.mode == "watch" or self.busy:
            return False
        if self.mode == "until" and not self.intake.answered():
            return False
        return pending == 0

    def _pump(self) -> int:
        """Start a turn for every idle agent whose oldest message is ready. Returns messages still to run."""
        claimed, pending = self.intake.claim_ready(self.busy, self._stopping)
        loop = asyncio.get_running_loop()
        for one in claimed:
            self.busy[one.message.recipient] = loop.create_task(self._handle(one))
        return pending

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
                await loop.run_in_executor(self._io, self.delivery.commit, record)
            committed = True
            await loop.run_in_executor(self._io, self.delivery.apply, record, claimed)
            self.handled += 1
            self.replies.delivered(record)
            if self.on_delivered is not None:
                self.on_delivered(record)
        except asyncio.CancelledError:
            if not committed and self.queue.in_flight(claimed):
                with contextlib.suppress(OSError):
                    self.queue.release(claimed)
            raise
        except (StorageError, OSError) as exc:  # the disk refused a write: stop rather than guess
            self.fatal = storage_failure(exc)
            self.stop()
        except Exception as exc:  # a bug of ours in the commit or the apply: the message must not stay stuck
            await self._bury(claimed, exc, committed)
        finally:
            if self.busy.get(msg.recipient) is asyncio.current_task():
                del self.busy[msg.recipient]
            self.intake.forget(msg.id)
            if self._wake is not None:
                self._wake.set()

    async def _bury(self, claimed: Claimed, exc: Exception, committed: bool) -> None:
        """Dead-letter a message whose turn could not be committed or applied (a bug of ours: a value that
        cannot be stored, a record that does not parse), with the reason, so no one waits for it for ever.
        If even that fails, stop serving: the next start recovers the message."""
        msg = claimed.message
        reason = internal_reason(exc)
        stack = clip("".join(traceback.format_exception(exc)), 8000)
        loop = asyncio.get_running_loop()
        try:
            self.trace.emit(
                "internal_error",
                message_id=msg.id,
                chain_id=msg.chain_id,
                agent=msg.recipient,
                attempt=claimed.attempts,
                error=reason,
                traceback=stack,
            )
            if committed:  # the record stands; only the queue file must not run again
                await loop.run_in_executor(self._io, self.queue.dead_letter, claimed, reason)
                return
            record = self._final(msg, "dead", reason, claimed.attempts)
            await loop.run_in_executor(self._io, self.records.commit, record)
            await loop.run_in_executor(self._io, self.delivery.apply, record, claimed)
            self.replies.delivered(record)
        except Exception as again:
            self.fatal = again if isinstance(again, AgentsError) else StorageError(f"cannot record a failure: {reason}")
            self.stop()

    def _final(self, msg: Message, status: TurnStatus, error: str, attempts: int) -> TurnRecord:
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
        """Run the turn of a claimed message: its record, or None if the message was put back for a retry."""
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
        refused = self.budgets.admit(msg)
        if refused is not None:
            return self._final(msg, "stopped", refused, attempts)
        limits = agent.effective_limits(self.limits)
        env = self.env_for(msg)
        ctx = TurnContext(self.ws, self, agent, msg, limits, attempts, self.trace, env=env)
        event = {"message_id": msg.id, "chain_id": msg.chain_id, "agent": agent.name}
        self.trace.emit("turn_start", **event, attempt=attempts)
        try:
            endpoint = await in_thread(resolve_endpoint, self.ws, agent, env)
            self.client.prepare(endpoint)  # before the attempt counts: a kill during the import is not one
            await asyncio.get_running_loop().run_in_executor(self._io, self.queue.begin, claimed)
            return await run_turn(ctx, self.client, endpoint)
        except Exception as exc:  # judged: model failures are retried, storage stops us, a bug is reported
            verdict = judge(exc, attempts, self.limits)
            if isinstance(verdict, Halt):
                if verdict.error is exc:
                    raise
                raise verdict.error from exc
            if isinstance(verdict, Retry):
                self.trace.emit("retry", **event, attempt=attempts, error=verdict.reason, delay=verdict.delay)
                self.queue.retry(claimed, verdict.delay)
                return None
            assert isinstance(verdict, Final)
            if verdict.internal:
                stack = "".join(traceback.format_exception(exc))
                self.trace.emit(
                    "internal_error", **event, attempt=attempts, error=verdict.reason, traceback=clip(stack, 8000)
                )
            return self._final(msg, verdict.status, verdict.reason, attempts)

    async def _publish_requests(self, messages: list[Message]) -> None:
        """Publish a waiting turn's requests off the loop (on the default pool: the fsyncs fan out to the I/O
        pool, which must not wait on itself), then wake the pump."""
        if messages:
            await asyncio.get_running_loop().run_in_executor(None, self.delivery.publish_requests, messages, self._io)
        if self._wake is not None:
            self._wake.set()

    # --- the Runtime its turns see (letta_cli.ports) -----------------------------------------------

    @contextlib.asynccontextmanager
    async def model_slot(self) -> AsyncIterator[None]:
        assert self._slots is not None
        async with self._slots:
            yield

    def charge(self, ctx: TurnContext, usage: Usage) -> None:
        self.budgets.charge(ctx.message.chain_id, ctx.agent.name, usage)

    async def request(self, ctx: TurnContext, message: Message) -> TurnRecord:
        return await self.replies.request(ctx, message)

    async def gather(self, ctx: TurnContext, messages: list[Message], limit: int) -> list[TurnRecord | str]:
        return await self.replies.gather(ctx, messages, limit)


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """Run a blocking call in a daemon thread of its own and await it. Unlike the default executor, a stop
    never waits for it: a model server that takes two minutes to start must not hold up SIGTERM."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting turn was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"agents-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await future
