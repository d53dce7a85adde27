"""What a queue backend offers: the verbs the scheduler and the inspection commands use, and nothing about
where or how messages are kept. tests/test_queue_conformance.py checks a backend against this contract.

A message is in one of four states:

    new  waiting (a retried one has a not-before time)     cur      claimed: a turn is running on it
    dead given up on, with the reason                      corrupt  unreadable, set aside so it never blocks

Producers publish without a lock; only the scheduler (holding the scheduler lock) claims, moves and deletes.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from letta_cli.core.models import Message

State = Literal["new", "cur", "dead", "corrupt"]
STATES: tuple[State, ...] = ("new", "cur", "dead", "corrupt")


@dataclass(frozen=True)
class Entry:
    """A message waiting in new/: its id, how often it was tried, when it may run, and the backend's name for
    it (the maildir's file name)."""

    id: str
    attempts: int
    name: str
    not_before: float  # epoch seconds; 0.0 for a message never tried


@dataclass
class Claimed:
    """A message a turn is running on. `handle` is the backend's name for the claim (the maildir: a file)."""

    message: Message
    attempts: int  # including this one (counted only once begin() marks it: see MessageQueue.begin)
    handle: str
    begun: bool = False

    @property
    def path(self) -> Path:
        """The maildir backend's claim file (the engine reads it; other backends have none)."""
        return Path(self.handle)


@dataclass(frozen=True)
class QueueItem:
    """One message as a listing shows it, in whatever state it is."""

    id: str
    state: State
    name: str  # the backend's name for it (the maildir: the file name)
    location: str  # where a person finds it (the maildir: the file's path)
    attempts: int | None  # None: not known (a corrupt file whose name does not say)
    message: Message | None  # None: unreadable
    raw: bytes | None  # what is stored, as stored (None if it vanished while we looked)
    stored_at: float  # epoch seconds: when the backend last stored it
    not_before: float | None  # a retried message waiting in new: when it may run again
    reason: str | None  # dead: why it died; corrupt: why it was set aside


class MessageQueue(Protocol):
    """The durable queue. Every verb returns only once its change is durable."""

    # --- producers ---------------------------------------------------------------------------------

    def setup(self) -> MessageQueue:
        """Create what the backend needs (idempotent); returns itself."""
        ...

    def publish(self, message: Message) -> None:
        """Make one message durable in new. Publishing an id that is waiting in new changes nothing; a caller
        that may repeat itself (a replayed turn) asks known() first, which also covers cur and dead."""
        ...

    def publish_many(self, messages: list[Message], io: Executor | None = None) -> None:
        """Publish a batch (writes may overlap on `io`); returns once every message is durable."""
        ...

    def known(self, message_id: str) -> bool:
        """Is this id queued (new, cur or dead)?"""
        ...

    def known_ids(self) -> set[str]:
        """Every id in new, cur or dead (one look, to check a batch)."""
        ...

    # --- the scheduler -----------------------------------------------------------------------------

    def scan(self) -> tuple[list[Entry], list[str]]:
        """The messages waiting in new, oldest first (by id), and the names of strays (not messages)."""
        ...

    def peek(self, entry: Entry) -> Message | None:
        """The waiting message of `entry`, without claiming it; None if it is gone. Raises ValueError if it
        is unreadable (claiming it then quarantines it)."""
        ...

    def claim(self, entry: Entry) -> Claimed | None:
        """Take a waiting message. The attempt is not counted yet: a process killed before begin() (during
        its start-up, say) hands it back with its count unchanged. None if unreadable (it is quarantined)."""
        ...

    def begin(self, claimed: Claimed) -> None:
        """Count the attempt: the turn is about to call the model. From now on a crash counts against
        max_attempts, so a message that kills the process on every try still ends dead (a poison pill)."""
        ...

    def in_flight(self, claimed: Claimed) -> bool:
        """Is the claim still held (not acked, retried, released or dead-lettered)?"""
        ...

    def ack(self, claimed: Claimed) -> None:
        """Forget a handled message (its turn record is the proof it was handled)."""
        ...

    def retry(self, claimed: Claimed, delay: float) -> None:
        """Back to new, not to run before `delay` seconds from now; the attempt counts."""
        ...

    def release(self, claimed: Claimed) -> None:
        """Back to new after a clean stop: the attempt does not count."""
        ...

    def dead_letter(self, claimed: Claimed, reason: str) -> None:
        """Give up on a message, keeping it and the reason."""
        ...

    def quarantine_strays(self, names: list[str]) -> None:
        """Set aside strays that scan() found, so they never block the queue."""
        ...

    def recover(self) -> int:
        """On start: put interrupted work (cur) back in new, with the attempts counted so far (a begun attempt
        counts, a claim that never began does not). Returns how many moved."""
        ...

    # --- repairs -----------------------------------------------------------------------------------

    def requeue_dead(self, message_id: str) -> None:
        """A dead letter back to new with its attempts reset and its reason dropped. NotFound if not dead."""
        ...

    def purge_dead(self) -> list[str]:
        """Delete every dead letter and its reason; returns their ids."""
        ...

    # --- inspection --------------------------------------------------------------------------------

    def depths(self) -> dict[str, int]:
        """How many messages each state holds: {"new": n, "cur": n, "dead": n, "corrupt": n}."""
        ...

    def items(self, states: tuple[State, ...] = STATES) -> list[QueueItem]:
        """Every message in these states, state by state, oldest first within each."""
        ...

    def find(self, message_id: str) -> QueueItem | None:
        """The message with this exact id, in whatever state it is."""
        ...

    def dead_reason(self, message_id: str) -> str | None:
        """Why a dead letter died (None if it is not dead)."""
        ...
