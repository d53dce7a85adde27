"""The maildir backend's own layout: file names, folders, modes and notes (the contract every backend keeps
is in test_queue_conformance.py)."""

import json
import os
import time

from letta_cli.core.models import Message
from letta_cli.store.queue import Queue


def make(tmp_path):
    return Queue(tmp_path / "queue").setup()


def msg(n: int = 0) -> Message:
    return Message(recipient="alice", body=f"hello {n}")


def test_publish_is_durable_immutable_json_in_new(tmp_path):
    q = make(tmp_path)
    m = msg()
    q.publish(m)
    path = q.dirs["new"] / f"{m.id}.json"
    assert path.parent.name == "new" and path.name == f"{m.id}.json"
    assert Message.model_validate_json(path.read_bytes()) == m
    assert os.listdir(q.dirs["tmp"]) == []
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_claim_records_attempts_in_the_name_and_retry_keeps_them(tmp_path):
    q = make(tmp_path)
    q.publish(msg())
    [entry], _ = q.scan()
    claimed = q.claim(entry)
    assert claimed.attempts == 1 and claimed.path.name == f"{entry.id}.json"
    q.begin(claimed)
    assert claimed.path.name.endswith(".a1.json")
    q.retry(claimed, delay=30)
    [entry], _ = q.scan()
    assert entry.attempts == 1 and entry.not_before > time.time() + 20
    assert q.claim(entry).attempts == 2


def test_recover_puts_interrupted_work_back(tmp_path):
    q = make(tmp_path)
    q.publish(msg())
    [entry], _ = q.scan()
    q.begin(q.claim(entry))
    (q.dirs["tmp"] / "leftover").write_text("half")
    assert q.depths()["cur"] == 1
    assert q.recover() == 1
    assert q.depths() == {"new": 1, "cur": 0, "dead": 0, "corrupt": 0}
    assert os.listdir(q.dirs["tmp"]) == []
    [entry], _ = q.scan()
    assert entry.attempts == 1  # the interrupted attempt still counts


def test_dead_letter_keeps_the_message_and_says_why(tmp_path):
    q = make(tmp_path)
    m = msg()
    q.publish(m)
    [entry], _ = q.scan()
    q.dead_letter(q.claim(entry), "model said no")
    assert (q.dirs["dead"] / f"{m.id}.json").exists()
    assert json.loads((q.dirs["dead"] / f"{m.id}.error.json").read_text())["error"] == "model said no"
    assert q.dead_reason(m.id) == "model said no"
    assert q.depths()["dead"] == 1


def test_corrupt_files_are_quarantined_not_blocking(tmp_path):
    q = make(tmp_path)
    bad_id = "01a00000-0000-7000-8000-000000000000"
    (q.dirs["new"] / f"{bad_id}.json").write_text("{not json")
    (q.dirs["new"] / "garbage.txt").write_text("x")
    good = msg()
    q.publish(good)
    entries, strays = q.scan()
    assert strays == ["garbage.txt"]
    q.quarantine_strays(strays)
    assert q.claim(entries[0]) is None  # the corrupt one
    assert (q.dirs["corrupt"] / f"{bad_id}.json").exists()
    assert "unreadable" in (q.dirs["corrupt"] / f"{bad_id}.json.error.txt").read_text()
    assert q.claim(entries[1]).message == good
