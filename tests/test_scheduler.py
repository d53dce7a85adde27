"""The scheduler's own decisions: what a failed turn means (retry, dead-letter, stop, or a bug of ours), and
that nothing blocks its loop, a model server slow to start included.

Most tests run a real Scheduler in-process on a workspace whose endpoint is the scripted model server; the
slow-start test runs the real `agents run` and sends it SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from letta_cli.core.config import Limits
from letta_cli.core.errors import ModelFailure, NotFound, StorageError
from letta_cli.core.models import Usage
from letta_cli.engine.budgets import BudgetExceeded
from letta_cli.engine.retry import Final, Halt, internal_reason, judge
from letta_cli.engine.scheduler import Scheduler
from letta_cli.model.endpoint import NoEndpoint
from letta_cli.ports import TurnContext
from letta_cli.store.records import TurnRecords
from tests.fakellm import FakeLLM, error, text
from tests.harness import dead_reason, publish, queue_names, wait_until, workspace, write_agent

FAST = 'version = 1\nmodel = "fake-model"\nbase_url = "{url}"\n[limits]\nretry_backoff = 0.01\nmodel_retries = 0\n'


@pytest.fixture
def team(ws: Path, llm: FakeLLM) -> Path:
    (ws / "agents.toml").write_text(FAST.format(url=llm.url))
    for name in ("alice", "bob"):
        write_agent(ws, name)
    return ws


def events(ws: Path, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (ws / ".agents" / "trace.jsonl").read_text().splitlines()) if e["event"] == kind]


# ---------------------------------------------------------------------------------------- what a failure means


def test_judge_classifies_every_kind_of_failure():
    limits = Limits(max_attempts=3, retry_backoff=0.5)
    assert judge(BudgetExceeded("chain token budget (9) exceeded"), 1, limits) == Final(
        "stopped", "chain token budget (9) exceeded"
    )
    disk = StorageError("cannot write the queue: No space left on device")
    assert judge(disk, 1, limits) == Halt(disk)
    halted = judge(OSError(5, "Input/output error"), 1, limits)
    assert isinstance(halted, Halt) and str(halted.error) == "storage failure: [Errno 5] Input/output error"
    for user_fixable in (NoEndpoint("no model endpoint for agent 'a'"), ModelFailure("no choices"), NotFound("x")):
        assert judge(user_fixable, 1, limits) == Final("dead", str(user_fixable))
    bug = judge(KeyError("label"), 1, limits)
    assert bug == Final("dead", "internal error: KeyError: 'label'", internal=True)


def test_an_internal_error_is_one_line():
    assert internal_reason(ValueError("first line\n  Traceback (most recent call last):\n  ...")) == (
        "internal error: ValueError: first line"
    )
    assert internal_reason(RuntimeError()) == "internal error: RuntimeError"


class BuggyScheduler(Scheduler):
    """A scheduler with a bug in one of its services: charging alice's tokens raises."""

    def charge(self, ctx: TurnContext, usage: Usage) -> None:
        if ctx.agent.name == "alice":
            raise KeyError("boom")
        super().charge(ctx, usage)


def test_a_bug_dead_letters_the_message_at_once_and_the_scheduler_keeps_serving(team: Path, llm: FakeLLM):
    buggy = publish(team, "alice", "trigger the bug")
    fine = publish(team, "bob", "hello")
    handled = asyncio.run(BuggyScheduler(workspace(team)).serve())
    assert handled == 2
    records = TurnRecords(team / ".agents" / "turns")
    record = records.get(buggy)
    assert record is not None and record.status == "dead" and record.attempts == 1
    assert record.error == "internal error: KeyError: 'boom'"
    assert dead_reason(team, buggy) == "internal error: KeyError: 'boom'"
    assert len(llm.requests_for("alice")) == 1  # not retried: a retry does not fix a bug
    [event] = events(team, "internal_error")
    assert event["message_id"] == buggy and event["error"] == record.error
    assert "KeyError: 'boom'" in event["traceback"] and "def charge" not in event["error"]
    assert events(team, "retry") == []
    bob = records.get(fine)
    assert bob is not None and bob.status == "ok" and bob.reply == ["ok from bob"]


def test_a_model_failure_is_retried_with_backoff_then_answers(team: Path, llm: FakeLLM):
    llm.script("alice", [error(500), text("second time lucky")])
    mid = publish(team, "alice", "hi")
    asyncio.run(Scheduler(workspace(team)).serve())
    record = TurnRecords(team / ".agents" / "turns").get(mid)
    assert record is not None and (record.status, record.reply, record.attempts) == ("ok", ["second time lucky"], 2)
    [retry] = events(team, "retry")
    assert "HTTP 500" in retry["error"] and retry["delay"] == 0.01


def test_a_malformed_model_response_is_a_model_failure_not_a_bug(team: Path, llm: FakeLLM):
    from tests.fakellm import Reply

    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [{"index": 0}]}
    llm.on("alice", lambda req: Reply(raw={**body, "choices": [{"index": 0, "message": None}]}))
    mid = publish(team, "alice", "hi")
    asyncio.run(Scheduler(workspace(team)).serve())
    assert dead_reason(team, mid) == "the model's response has no message"
    assert events(team, "internal_error") == []


def test_a_lone_surrogate_from_the_model_is_replaced_not_fatal(team: Path, llm: FakeLLM):
    """A server that cuts an emoji in half sends a lone UTF-16 surrogate ("\\ud83d"), which cannot be
    written as UTF-8: the history, the record and the trace must still be written."""
    llm.script("alice", [text("half an emoji: \ud83d")])
    mid = publish(team, "alice", "hi")
    asyncio.run(Scheduler(workspace(team)).serve())
    record = TurnRecords(team / ".agents" / "turns").get(mid)
    assert record is not None and record.status == "ok" and record.reply == ["half an emoji: \ufffd"]


# --------------------------------------------------------------------------------- a slow model-server start


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_model_server_slow_to_start_holds_up_only_its_own_agent(cli, llm, ws: Path):
    """`slow` uses the local model, whose server (as its record says) is still starting: a live process that
    does not listen yet, so resolving slow's endpoint waits (up to two minutes). Meanwhile `fast` must be
    served, and SIGTERM must stop the scheduler at once, giving slow's message back."""
    write_agent(ws, "slow", extra='model = "local"')
    write_agent(ws, "fast")
    starting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "llama_cpp.server"])
    try:
        port = closed_port()
        record = {
            "version": 1,
            "pid": starting.pid,
            "port": port,
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": "smollm2",
            "gguf": "/nowhere/smollm2.gguf",
        }
        (ws / ".agents").mkdir(exist_ok=True)
        (ws / ".agents" / "model-server.json").write_text(json.dumps(record))
        slow = publish(ws, "slow", "take your time")  # first in the queue: its turn starts first
        fast = publish(ws, "fast", "quick one")
        runner = cli.popen("run", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        turns = ws / ".agents" / "turns"
        wait_until((turns / f"{fast}.json").exists, 30, "fast's turn while slow's endpoint resolves")
        assert not (turns / f"{slow}.json").exists() and starting.poll() is None
        stopped_at = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=30)
        assert runner.returncode == 0, err.decode()
        assert time.monotonic() - stopped_at < 5, "SIGTERM waited for the model server"
        assert f"{slow}.json" in queue_names(ws, "new")  # given back, its attempt not counted
    finally:
        starting.kill()
        starting.wait()
