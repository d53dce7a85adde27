"""Crash points: the real CLI is SIGKILLed at every named point (LETTA_CLI_CRASH_AT), restarted, drained,
and the invariants are checked: every message whose send exited 0 is handled exactly once (one turn in the
receiver's history; the messages its turn sent, sent once) or dead-lettered with a reason; no state file is
half-written; no committed memory edit is lost or applied twice."""

from __future__ import annotations

import json
import signal

import pytest

from tests.fakellm import call, text, tool_results
from tests.harness import (
    check_state,
    dead_reason,
    history,
    publish,
    queue_names,
    shared_block,
    temp_leftovers,
    user_turns,
    write_agent,
)

KILLED = -signal.SIGKILL


def current_text(body: dict) -> str:
    """The inbound message of the turn a request belongs to (the last user message)."""
    for msg in reversed(body["messages"]):
        if msg["role"] == "user":
            return msg["content"]
    return ""


def alice_model(body: dict):
    """Deterministic per request, so a replayed turn asks and gets exactly what the first attempt did."""
    if tool_results(body):
        return text("done")
    msg = current_text(body)
    if msg.startswith("fwd:"):
        return call("send_message_to_agent_async", other_agent_id="bob", message="relay " + msg)
    if msg.startswith("mem:"):
        return call("core_memory_append", label="notes", content=msg.removeprefix("mem:").strip())
    return text("ok")


@pytest.fixture
def team(cli, llm, ws):
    write_agent(ws, "alice", shared=["notes"])
    write_agent(ws, "bob")
    shared_block(ws, "notes", "start")
    llm.on("alice", alice_model)
    llm.on("bob", lambda body: text("got it"))
    return cli


def notes(ws) -> str:
    return json.loads((ws / ".agents" / "blocks" / "shared" / "notes.json").read_text())["value"]


def record(ws, mid: str) -> dict:
    return json.loads((ws / ".agents" / "turns" / f"{mid}.json").read_text())


def handled_once(ws, agent: str, mid: str, body: str) -> None:
    """Handled exactly once, or dead with a reason (never both, never neither)."""
    turns = user_turns(ws, agent, content=body)
    if turns == 0:
        assert dead_reason(ws, mid), f"{body!r} to {agent} was neither handled nor dead-lettered"
    else:
        assert turns == 1, f"{body!r} was handled {turns} times by {agent}"
        assert record(ws, mid)["status"] == "ok"


def crash_run(cli, spec: str, temp_in: str | None = None):
    """`agents run` SIGKILLed at `spec`; for during_atomic_write, `temp_in` names the folder whose write it
    must have interrupted (so a change in the order of writes cannot silently move the crash elsewhere)."""
    res = cli("run", env={"LETTA_CLI_CRASH_AT": spec})
    assert res.code == KILLED, f"crash point {spec} was never reached (exit {res.code}): {res.err}"
    if temp_in is not None:
        ws = cli.root
        assert any(t.startswith(f".agents/{temp_in}/") for t in temp_leftovers(ws)), temp_leftovers(ws)
    return res


def temp_folder(spec: str, scenario: str) -> str | None:
    """Where each during_atomic_write crash lands: @1 is scheduler.pid, then the scenario's writes in order."""
    return {
        ("relay", "during_atomic_write@2"): "turns",
        ("memory", "during_atomic_write@2"): "blocks/shared",
        ("memory", "during_atomic_write@3"): "turns",
    }.get((scenario, spec))


# ------------------------------------------------------------------------------- scheduler: the relay

RELAY_POINTS = [
    "after_claim@1",  # alice's first message, just moved to cur/
    "after_model_call@1",  # alice asked the model, nothing committed
    "after_model_call@2",  # alice's tool call ran (the async send sits in the turn's outbox)
    "after_commit@1",  # the turn record is on disk, nothing applied
    "after_publish_write@1",  # the outbox message is in queue/tmp only
    "after_link@1",  # the outbox message is in new/, the turn is not acked
    "after_history_append@1",  # history written, outbox not published
    "after_ack@1",
    "during_atomic_write@2",  # the first turn record's temp file written, not renamed
]


@pytest.mark.parametrize("spec", RELAY_POINTS)
def test_scheduler_crash_relay(team, ws, spec):
    fwd = publish(ws, "alice", "fwd: one")
    plain = publish(ws, "alice", "plain: three")
    crash_run(team, spec, temp_folder(spec, "relay"))
    team.ok("run")
    handled_once(ws, "alice", fwd, "fwd: one")
    handled_once(ws, "alice", plain, "plain: three")
    # the async message alice's turn sent reached bob exactly once
    assert user_turns(ws, "bob", contains="relay fwd: one") == 1
    check_state(ws)


# ------------------------------------------------------------------------------ scheduler: a memory edit

MEMORY_POINTS = [
    "during_atomic_write@2",  # the block's new value written to a temp file, not renamed
    "after_block_write@1",  # the block renamed into place, its change log not yet appended
    "after_model_call@2",  # the edit is done, the turn is not committed: the replay must not append twice
    "during_atomic_write@3",  # the turn record's temp file written, not renamed
    "after_commit@1",
]


@pytest.mark.parametrize("spec", MEMORY_POINTS)
def test_scheduler_crash_memory_edit(team, ws, spec):
    mid = publish(ws, "alice", "mem: two")
    crash_run(team, spec, temp_folder(spec, "memory"))
    team.ok("run")
    handled_once(ws, "alice", mid, "mem: two")
    assert notes(ws) == "start\ntwo", "a committed edit was lost or applied twice"
    check_state(ws)


def test_block_change_log_matches_the_block_after_a_crash(team, ws):
    """A crash between the block write and its change-log line must not leave the log short."""
    publish(ws, "alice", "mem: two")
    crash_run(team, "after_block_write@1")
    team.ok("run")
    block = json.loads((ws / ".agents" / "blocks" / "shared" / "notes.json").read_text())
    log = [
        json.loads(line) for line in (ws / ".agents" / "blocks" / "shared" / "notes.log.jsonl").read_text().splitlines()
    ]
    assert [e["revision"] for e in log] == list(range(block["revision"] + 1)), "the edit is missing from the log"


def test_replayed_turn_with_a_different_edit_is_not_dropped(team, llm, ws):
    """Real models are not deterministic: a turn replayed after a crash may edit differently. The edit of the
    turn that finally commits must be in the block (the key of an edit must not be its position alone)."""
    attempt = {"n": 0}

    def fickle(body):
        if tool_results(body):
            return text("done")
        attempt["n"] += 1
        return call("core_memory_append", label="notes", content=f"edit-of-attempt-{attempt['n']}")

    llm.on("alice", fickle)
    mid = publish(ws, "alice", "remember something")
    crash_run(team, "after_model_call@2")
    team.ok("run")
    handled_once(ws, "alice", mid, "remember something")
    committed = [h for h in history(ws, "alice") if h["role"] == "assistant" and h.get("tool_calls")]
    args = json.loads(committed[0]["tool_calls"][0]["function"]["arguments"])
    assert args["content"] in notes(ws), f"the committed turn's edit is missing: {notes(ws)!r}"


def test_abandoned_temp_files_are_swept_on_restart(team, ws):
    """A crash between an atomic write's temp file and its rename leaves `.tmp-<pid>-...`; the next scheduler
    start should remove those of dead processes (they are garbage, and may be partial)."""
    publish(ws, "alice", "mem: two")
    crash_run(team, "during_atomic_write@2", "blocks/shared")
    team.ok("run")
    assert temp_leftovers(ws) == []


# --------------------------------------------------------------------------------------------- producers


@pytest.mark.parametrize("spec", ["after_publish_write", "after_link"])
def test_sender_crash(team, ws, spec):
    ok = publish(ws, "alice", "plain: before")
    res = team("send", "alice", "plain: crashing", "--no-wait", env={"LETTA_CLI_CRASH_AT": spec})
    assert res.code == KILLED
    if spec == "after_publish_write":
        assert queue_names(ws, "tmp"), "the temp file should be left behind"
        assert [n for n in queue_names(ws, "new") if not n.startswith(ok)] == []
    team.ok("run")
    handled_once(ws, "alice", ok, "plain: before")
    # the crashed send did not exit 0, so either outcome is allowed, but never twice; once linked it is handled
    assert user_turns(ws, "alice", content="plain: crashing") == (1 if spec == "after_link" else 0)
    check_state(ws)  # includes: queue/tmp emptied by recovery


# ------------------------------------------------------------------------------------------ poison pills


def test_a_message_that_kills_the_scheduler_every_time_ends_dead(team, ws):
    (ws / "agents.toml").write_text(
        'version = 1\nmodel = "m"\n[limits]\nmax_attempts = 2\nretry_backoff = 0.01\nmodel_retries = 0\nmodel_timeout = 2\n'
    )
    mid = publish(ws, "alice", "plain: poison")
    crash_run(team, "after_model_call")
    crash_run(team, "after_model_call")
    team.ok("run")
    assert user_turns(ws, "alice", content="plain: poison") == 0
    reason = dead_reason(ws, mid)
    assert reason and "gave up after 2 attempts" in reason
    check_state(ws)


def test_two_crashes_in_a_row_then_recovery(team, ws):
    fwd = publish(ws, "alice", "fwd: one")
    mem = publish(ws, "alice", "mem: two")
    crash_run(team, "after_history_append@1")
    crash_run(team, "after_claim@2")
    team.ok("run")
    handled_once(ws, "alice", fwd, "fwd: one")
    handled_once(ws, "alice", mem, "mem: two")
    assert user_turns(ws, "bob", contains="relay fwd: one") == 1
    assert notes(ws) == "start\ntwo"
    check_state(ws)
