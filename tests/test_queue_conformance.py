"""The contract of a queue backend (letta_cli.store.queue.MessageQueue), run against every backend.

Only the interface's verbs are used here, so a second backend (a server-based queue, say) passes by adding
one entry to BACKENDS: how to make an empty queue, and how to put an unreadable message and a stray in it
(the one thing a test cannot do through the verbs, since they never write garbage).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from letta_cli.core.errors import NotFound
from letta_cli.core.models import Message
from letta_cli.store.queue import STATES, MaildirQueue, MessageQueue


@dataclass
class Backend:
    make: Callable[[Path], MessageQueue]
    put_unreadable: Callable[[MessageQueue, str], None]  # a waiting "message" with this id that does not parse
    put_stray: Callable[[MessageQueue, str], None]  # something in new that is not a message at all


def _maildir_unreadable(q: MessageQueue, message_id: str) -> None:
    assert isinstance(q, MaildirQueue)
    (q.dirs["new"] / f"{message_id}.json").write_text("{not json")


def _maildir_stray(q: MessageQueue, name: str) -> None:
    assert isinstance(q, MaildirQueue)
    (q.dirs["new"] / name).write_text("x")


BACKENDS = {
    "maildir": Backend(
        make=lambda tmp: MaildirQueue(tmp / "queue").setup(),
        put_unreadable=_maildir_unreadable,
        put_stray=_maildir_stray,
    ),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def queue(backend: Backend, tmp_path: Path) -> MessageQueue:
    return backend.make(tmp_path)


def msg(n: int = 0, to: str = "alice") -> Message:
    return Message(recipient=to, body=f"hello {n}")


def waiting(q: MessageQueue) -> list:
    entries, strays = q.scan()
    assert strays == []
    return entries


def claim_one(q: MessageQueue):
    [entry] = waiting(q)
    claimed = q.claim(entry)
    assert claimed is not None
    return claimed


# --------------------------------------------------------------------------------------------- publishing


def test_a_published_message_waits_in_new_and_reads_back_whole(queue):
    m = msg()
    queue.publish(m)
    [entry] = waiting(queue)
    assert (entry.id, entry.attempts, entry.not_before) == (m.id, 0, 0.0)
    assert queue.peek(entry) == m
    assert queue.known(m.id) and m.id in queue.known_ids()
    assert queue.depths() == {"new": 1, "cur": 0, "dead": 0, "corrupt": 0}


def test_publishing_a_waiting_id_again_changes_nothing(queue):
    m = msg()
    queue.publish(m)
    queue.publish_many([m, m])
    assert [e.id for e in waiting(queue)] == [m.id]
    assert queue.depths()["new"] == 1


def test_scan_is_fifo_by_id_whatever_the_publish_order(queue):
    sent = [msg(i) for i in range(20)]
    queue.publish_many(list(reversed(sent)))
    assert [e.id for e in waiting(queue)] == [m.id for m in sent]


def test_unknown_ids_are_not_known(queue):
    assert not queue.known(msg().id) and queue.known_ids() == set()
    assert queue.find(msg().id) is None and queue.dead_reason(msg().id) is None


# ---------------------------------------------------------------------------------------------- claiming


def test_claim_counts_the_attempt_and_ack_forgets(queue):
    m = msg()
    queue.publish(m)
    claimed = claim_one(queue)
    assert claimed.message == m and claimed.attempts == 1
    assert waiting(queue) == [] and queue.in_flight(claimed) and queue.known(m.id)
    assert queue.depths()["cur"] == 1
    queue.ack(claimed)
    assert not queue.in_flight(claimed) and not queue.known(m.id)
    assert queue.depths() == dict.fromkeys(STATES, 0)


def test_retry_waits_until_not_before_and_keeps_counting(queue):
    queue.publish(msg())
    claimed = claim_one(queue)
    queue.begin(claimed)
    queue.retry(claimed, delay=30)
    [entry] = waiting(queue)
    assert entry.attempts == 1 and entry.not_before > time.time() + 20
    [item] = queue.items(("new",))
    assert item.attempts == 1 and item.not_before is not None and item.not_before > time.time() + 20
    claimed = queue.claim(entry)
    assert claimed is not None and claimed.attempts == 2


def test_release_does_not_count_the_attempt(queue):
    queue.publish(msg())
    claimed = claim_one(queue)
    queue.begin(claimed)
    queue.release(claimed)
    assert not queue.in_flight(claimed)
    [entry] = waiting(queue)
    assert entry.attempts == 0 and entry.not_before == 0.0
    assert claim_one(queue).attempts == 1


def test_recover_moves_in_flight_work_back_with_its_attempt(queue):
    queue.publish(msg())
    queue.begin(claim_one(queue))
    assert queue.recover() == 1
    assert queue.depths() == {"new": 1, "cur": 0, "dead": 0, "corrupt": 0}
    [entry] = waiting(queue)
    assert entry.attempts == 1  # the interrupted attempt still counts
    assert queue.recover() == 0


def test_a_claim_that_never_began_does_not_count(queue):
    """A process killed between its claim and its first model call (its start-up) uses up no attempt."""
    queue.publish(msg())
    for _ in range(3):
        claimed = claim_one(queue)
        assert claimed.attempts == 1 and queue.in_flight(claimed)
        assert queue.recover() == 1
    [entry] = waiting(queue)
    assert entry.attempts == 0 and entry.not_before == 0.0
    claimed = claim_one(queue)
    queue.begin(claimed)
    queue.begin(claimed)  # idempotent
    assert queue.in_flight(claimed) and queue.recover() == 1
    [entry] = waiting(queue)
    assert entry.attempts == 1


# -------------------------------------------------------------------------------------------- dead letters


def test_dead_letter_keeps_the_message_and_the_reason(queue):
    m = msg()
    queue.publish(m)
    queue.dead_letter(claim_one(queue), "model said no")
    assert waiting(queue) == [] and queue.known(m.id)
    assert queue.dead_reason(m.id) == "model said no"
    item = queue.find(m.id)
    assert item is not None and (item.state, item.reason, item.attempts, item.message) == (
        "dead",
        "model said no",
        1,
        m,
    )


def test_requeue_dead_resets_the_attempts_and_drops_the_reason(queue):
    m = msg()
    queue.publish(m)
    queue.dead_letter(claim_one(queue), "boom")
    queue.requeue_dead(m.id)
    [entry] = waiting(queue)
    assert entry.id == m.id and entry.attempts == 0 and queue.dead_reason(m.id) is None
    with pytest.raises(NotFound):
        queue.requeue_dead(m.id)  # not dead any more


def test_purge_dead_deletes_only_dead_letters(queue):
    doomed, alive = msg(1), msg(2)
    queue.publish_many([doomed, alive])
    first = queue.claim(waiting(queue)[0])
    assert first is not None and first.message == doomed
    queue.dead_letter(first, "boom")
    assert queue.purge_dead() == [doomed.id]
    assert not queue.known(doomed.id) and queue.dead_reason(doomed.id) is None
    assert [e.id for e in waiting(queue)] == [alive.id]
    assert queue.purge_dead() == []


# ------------------------------------------------------------------------------------------------ corrupt


def test_unreadable_messages_are_quarantined_and_never_block(backend, queue):
    bad = "01a00000-0000-7000-8000-000000000000"  # sorts before every real id: it would block a FIFO queue
    backend.put_unreadable(queue, bad)
    backend.put_stray(queue, "garbage.txt")
    good = msg()
    queue.publish(good)
    entries, strays = queue.scan()
    assert [e.id for e in entries] == [bad, good.id] and strays == ["garbage.txt"]
    with pytest.raises(ValueError):
        queue.peek(entries[0])
    queue.quarantine_strays(strays)
    assert queue.claim(entries[0]) is None
    claimed = queue.claim(entries[1])
    assert claimed is not None and claimed.message == good
    assert queue.scan() == ([], [])
    corrupt = queue.items(("corrupt",))
    assert len(corrupt) == 2 and all(i.message is None and i.reason for i in corrupt)
    assert {i.id for i in corrupt} >= {bad}
    assert queue.depths()["cur"] == 1 and not queue.known(bad)


# ---------------------------------------------------------------------------------------------- listing


def test_listing_reports_each_state(backend, queue):
    new, cur, dead = msg(1, "a"), msg(2, "b"), msg(3, "c")
    queue.publish_many([new, cur, dead])
    entries = {e.id: e for e in waiting(queue)}
    in_flight = queue.claim(entries[cur.id])
    gone = queue.claim(entries[dead.id])
    assert in_flight is not None and gone is not None
    queue.begin(in_flight)
    queue.dead_letter(gone, "gave up")
    broken = "01a00000-0000-7000-8000-00000000beef"
    backend.put_unreadable(queue, broken)
    assert queue.claim(next(e for e in waiting(queue) if e.id == broken)) is None

    items = queue.items()
    assert [i.state for i in items] == ["new", "cur", "dead", "corrupt"]  # state by state
    by_state = {i.state: i for i in items}
    assert (by_state["new"].id, by_state["new"].attempts, by_state["new"].message) == (new.id, 0, new)
    assert by_state["new"].not_before is None and by_state["new"].reason is None
    assert (by_state["cur"].id, by_state["cur"].attempts, by_state["cur"].message) == (cur.id, 1, cur)
    assert (by_state["dead"].id, by_state["dead"].reason, by_state["dead"].attempts) == (dead.id, "gave up", 1)
    assert by_state["corrupt"].message is None and by_state["corrupt"].reason
    assert by_state["corrupt"].raw is not None
    for item in items:
        assert item.name and item.location and item.stored_at > 0
        if item.message is not None:
            assert item.raw is not None and Message.model_validate_json(item.raw) == item.message
    assert [i.id for i in queue.items(("dead", "new"))] == [dead.id, new.id]
    assert queue.depths() == {"new": 1, "cur": 1, "dead": 1, "corrupt": 1}
    found = queue.find(cur.id)
    assert found is not None and found.state == "cur"
