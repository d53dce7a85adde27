"""Issue 15, doubled state and restarts: a turn replayed after a kill -9 recognises every memory edit of its
own (however many it made, however many other turns edited the block meanwhile), and kills that come before
a turn calls its model never use up a message's attempts (a message that kills every try still ends dead)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import CLI
from tests.fakellm import calls, text, tool_results
from tests.harness import check_state, dead_reason, publish, shared_block, user_turns, write_agent

KILLED = -signal.SIGKILL
CONFIG = (
    'version = 1\nmodel = "m"\n[limits]\nmax_attempts = 3\nretry_backoff = 0.01\nmodel_retries = 0\nmodel_timeout = 5\n'
)


@pytest.fixture
def writer(cli: CLI, ws: Path, llm) -> CLI:
    (ws / "agents.toml").write_text(CONFIG)
    write_agent(ws, "alice", shared=["notes"])
    shared_block(ws, "notes", "start")
    return cli


def notes(ws: Path) -> list[str]:
    return json.loads((ws / ".agents" / "blocks" / "shared" / "notes.json").read_text())["value"].splitlines()


def appends(n: int, tag: str):
    """One model reply calling core_memory_append n times (deterministic: a replay asks and gets the same)."""
    return calls(*[("core_memory_append", {"label": "notes", "content": f"{tag} {i}"}) for i in range(n)])


def crash(cli: CLI, spec: str) -> None:
    res = cli("run", env={"LETTA_CLI_CRASH_AT": spec})
    assert res.code == KILLED, f"{spec} was never reached (exit {res.code}): {res.err}"


def test_a_turn_with_60_memory_edits_replayed_after_a_kill_applies_each_once(writer: CLI, ws: Path, llm):
    llm.on("alice", lambda body: text("done") if tool_results(body) else appends(60, "edit"))
    publish(ws, "alice", "remember sixty things")
    crash(writer, "after_model_call@2")  # the 60 edits are made, the turn is not committed
    assert len(notes(ws)) == 61
    assert writer("run").code == 0
    assert notes(ws) == ["start", *(f"edit {i}" for i in range(60))]  # not 120 (nor 70)
    assert user_turns(ws, "alice", content="remember sixty things") == 1
    check_state(ws)


def test_55_other_edits_between_the_kill_and_the_replay_do_not_hide_the_turns_own(writer: CLI, ws: Path, llm):
    from letta_cli.store.agents import AgentStore
    from letta_cli.store.workspace import Workspace
    from letta_cli.tools.memory import run_memory_tool

    llm.on("alice", lambda body: text("done") if tool_results(body) else appends(3, "mine"))
    publish(ws, "alice", "remember three things")
    crash(writer, "after_model_call@2")
    workspace = Workspace(ws.resolve())
    bob = write_agent(ws, "bob", shared=["notes"]) and AgentStore(workspace).get("bob")
    other = "01a00000-0000-7000-8000-0000000000b0"  # another turn, still running, edits the block 55 times
    for i in range(55):
        run_memory_tool(workspace, bob, "core_memory_append", {"label": "notes", "content": f"bob {i}"},
                        edit_key=f"{other}:{i}:x")  # fmt: skip
    assert writer("run").code == 0
    assert [line for line in notes(ws) if line.startswith("mine")] == ["mine 0", "mine 1", "mine 2"]
    assert len(notes(ws)) == 1 + 3 + 55
    check_state(ws)


def test_kills_before_the_model_is_called_use_up_no_attempts(writer: CLI, ws: Path, llm):
    """A restart storm: the scheduler is killed right after each claim, more times than max_attempts."""
    llm.on("alice", lambda body: text("ack"))
    mid = publish(ws, "alice", "survive the storm")
    for _ in range(6):  # max_attempts is 3
        crash(writer, "after_claim")
    assert writer("run").code == 0
    assert user_turns(ws, "alice", content="survive the storm") == 1 and dead_reason(ws, mid) is None
    check_state(ws)


def test_a_message_that_kills_every_attempt_still_ends_dead(writer: CLI, ws: Path, llm):
    llm.on("alice", lambda body: text("ack"))
    mid = publish(ws, "alice", "poison")
    for _ in range(3):
        crash(writer, "after_begin")  # counted: the turn was about to call the model
    assert writer("run").code == 0
    assert user_turns(ws, "alice", content="poison") == 0
    assert "gave up after 3 attempts" in (dead_reason(ws, mid) or "")
    check_state(ws)
