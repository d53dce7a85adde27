"""Requests between turns (wait-for-reply and broadcast): a waiting turn awaits one future per request, set
when the target's turn is delivered. The turn is suspended, the loop is not. A request that would close a
waits-for cycle is never sent: its outcome is the refusal text, which the waiting model reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from letta_cli.core.errors import ToolError
from letta_cli.core.models import Message, TurnRecord
from letta_cli.engine.waits import WaitsFor
from letta_cli.ports import TurnContext
from letta_cli.store.records import TurnRecords

Publish = Callable[[list[Message]], Awaitable[None]]


class Replies:
    def __init__(self, records: TurnRecords, publish: Publish):
        self.records = records
        self.publish = publish  # puts requests on the queue (off the loop) and wakes the pump
        self.waits = WaitsFor()
        self.futures: dict[str, asyncio.Future[TurnRecord]] = {}

    def delivered(self, record: TurnRecord) -> None:
        """A turn was delivered: wake the turn waiting for its reply, if one does."""
        future = self.futures.pop(record.message_id, None)
        if future is not None and not future.done():
            future.set_result(record)

    async def request(self, ctx: TurnContext, message: Message) -> TurnRecord:
        """Send a request and suspend the calling turn until the target's turn ends."""
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
            await self.publish([m for m in accepted if not waits[m.id].done()])
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
