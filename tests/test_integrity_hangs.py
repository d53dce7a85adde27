"""Issue 15, hangs and tracebacks: odd model replies, bugs in the commit, unreadable turn records, absurd
settings, signals, FIFOs, bytes that are not UTF-8 and hand-broken logs each end in one clear line (or a
stored reply), promptly, never in a hang or an "internal error". Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, fails
from tests.fakellm import Reply, text
from tests.harness import REPO, check_state, dead_reason, history, publish, queue_names, user_turns, write_agent


@pytest.fixture
def alice(cli: CLI, ws: Path, llm) -> CLI:
    write_agent(ws, "alice")
    llm.default = lambda body: text("ack")
    return cli


def raw_reply(message: dict) -> Reply:
    return Reply(raw={"choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}]})


def test_a_lone_surrogate_in_a_model_reply_is_stored_as_a_replacement_character(alice: CLI, ws: Path, llm):
    call = {"id": "call_\ud800", "type": "function", "function": {"name": "send_message", "arguments": ""}}
    call["function"]["arguments"] = json.dumps({"message": "half an emoji: \ud83d"})  # JSON escapes: \\ud83d
    llm.script("alice", [raw_reply({"content": None, "tool_calls": [call]})])
    res = alice("send", "alice", "hi", timeout=60)
    assert res.code == 0, res.err
    assert res.out.strip() == "half an emoji: \ufffd"
    [_, assistant, tool] = history(ws, "alice")
    assert assistant["tool_calls"][0]["id"] == "call_\ufffd" and tool["tool_call_id"] == "call_\ufffd"
    check_state(ws)


def test_a_bug_in_the_commit_dead_letters_the_message_and_send_fails_at_once(alice: CLI, ws: Path):
    started = time.monotonic()
    res = alice("send", "alice", "hi", env={"LETTA_CLI_FAIL_AT": "commit:BUG"}, timeout=60)
    line = fails(res, 7, "alice: dead: internal error: InjectedBug")
    assert time.monotonic() - started < 30, line
    [dead] = [n for n in queue_names(ws, "dead") if not n.endswith(".error.json")]
    assert "InjectedBug" in (dead_reason(ws, dead.removesuffix(".json")) or "")
    assert alice("send", "alice", "again").code == 0  # serving goes on: nothing is stuck in cur/
    check_state(ws)


WAIT = """
import sys
from pathlib import Path
from letta_cli.app import messaging
from letta_cli.core.errors import AgentsError
from letta_cli.store.workspace import Workspace
try:
    messaging.wait(Workspace(Path(sys.argv[1])), [sys.argv[2]])
except AgentsError as exc:
    print(type(exc).__name__, exc)
"""


def test_a_turn_record_that_does_not_validate_fails_the_wait_with_one_line(alice: CLI, ws: Path):
    mid = publish(ws, "alice", "hi")
    record = ws / ".agents" / "turns" / f"{mid}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text('{"message_id": 42}')
    env = {**alice.env, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", WAIT, str(ws), mid], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.stdout.startswith("InvalidFile ") and str(record) in proc.stdout, (proc.stdout, proc.stderr)
    assert len(proc.stdout.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e308"])
def test_an_infinite_or_overflowing_retry_backoff_is_refused(alice: CLI, ws: Path, value: str):
    (ws / "agents.toml").write_text(f'version = 1\nmodel = "m"\n[limits]\nretry_backoff = {value}\n')
    fails(alice("send", "alice", "hi", timeout=30), 4, "agents.toml", "limits.retry_backoff")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_a_serving_send_with_its_message_still_queued(alice: CLI, ws: Path, llm, sig, code):
    llm.default = lambda body: text("late", delay=8)
    proc = alice.popen("send", "alice", "hi", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    llm.wait_for_requests(1, timeout=60)  # it serves the queue itself, and the model call is under way
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "stay queued" in err.decode() and "Traceback" not in err.decode()
    assert len(llm.requests) == 1  # handed back, not run again at once
    assert [n.endswith(".json") and ".a" not in n for n in queue_names(ws, "new")] == [True]  # no attempt used
    llm.default = lambda body: text("ack")
    assert alice("run").code == 0
    assert user_turns(ws, "alice", content="hi") == 1
    check_state(ws)


def test_a_fifo_in_agents_d_or_as_agents_toml_never_hangs(alice: CLI, ws: Path):
    os.mkfifo(ws / "agents.d" / "ghost.toml")
    res = alice("list", timeout=20)
    assert res.code == 4 and "alice" in res.out, res.err
    assert "ghost.toml: not a regular file" in res.err and "Traceback" not in res.err
    (ws / "agents.toml").unlink()
    os.mkfifo(ws / "agents.toml")
    fails(alice("send", "alice", "hi", timeout=20), 4, "agents.toml: not a regular file")


def test_arguments_that_are_not_utf8_are_one_line(alice: CLI, ws: Path):
    argv = [os.fsencode(a) for a in alice.argv("send", "alice")] + [b"caf\xe9"]
    proc = subprocess.run(argv, env=alice.env, capture_output=True, timeout=30)
    assert proc.returncode == 2 and proc.stderr.decode().strip() == "agents: error: argument 5 is not valid UTF-8 text"
    assert queue_names(ws, "new") == []


def test_history_and_trace_lines_with_wrong_field_types_are_skipped(alice: CLI, ws: Path):
    assert alice("send", "alice", "hello").code == 0
    with open(ws / ".agents" / "history" / "alice.jsonl", "a") as fh:
        fh.write('{"turn_id": 5, "seq": "x", "role": 7, "content": {"a": 1}}\n[1, 2]\n')
        fh.write('{"turn_id": "t", "seq": 0, "role": "assistant", "tool_calls": [{"function": "x"}]}\n')
    with open(ws / ".agents" / "trace.jsonl", "a") as fh:
        fh.write('{"v": 1, "ts": 5, "event": "turn_end", "message_id": 3, "agent": ["x"], "prompt_tokens": "a"}\n')
        fh.write('{"v": 1, "event": "message", "message_id": "m", "chain_id": {}, "body": 3, "hop": "x"}\n[]\n')
    for args in (["history", "alice"], ["history", "alice", "--json"], ["usage"], ["usage", "alice"], ["status"]):
        res = alice(*args)
        assert res.code == 0 and "internal error" not in res.err, (args, res.err)
    assert "hello" in alice("history", "alice").out
    assert alice("trace", "--last").code == 0


def test_broadcast_refuses_when_an_agent_file_does_not_parse(alice: CLI, ws: Path):
    write_agent(ws, "bob", tags=["team"])
    (ws / "agents.d" / "carol.toml").write_text('version = 1\nname = "carol"\ntags = ["team"\n')
    fails(alice("broadcast", "--tags", "team", "hi"), 4, "carol.toml", "nothing was sent")
    assert queue_names(ws, "new") == []
