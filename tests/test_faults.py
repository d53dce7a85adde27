"""Faults: a flaky model endpoint (429/500/timeouts/disconnects) and a failing disk (LETTA_CLI_FAIL_AT makes a
file operation raise EIO or ENOSPC)."""

from __future__ import annotations

import json
import os

import pytest

from tests.fakellm import call, text, tool_results
from tests.harness import check_state, dead_reason, publish, queue_names, user_turns, write_agent

# ------------------------------------------------------------------------------------------- model faults


def test_flaky_model_200_messages_nothing_lost(cli, llm, ws):
    """fault_rate 0.3 over 429, 500, timeouts (answer after model_timeout) and dropped connections."""
    (ws / "agents.toml").write_text(
        'version = 1\nmodel = "m"\n[limits]\nmodel_timeout = 0.5\nmodel_retries = 1\nretry_backoff = 0.02\nmax_attempts = 6\n'
    )
    agents = [f"w{i}" for i in range(20)]
    for name in agents:
        write_agent(ws, name)
    llm.fault_rate = 0.3
    llm.timeout_delay = 1.0  # above model_timeout: the client gives up first
    sent = {}
    for i in range(200):
        body = f"job {i}"
        sent[body] = (agents[i % len(agents)], publish(ws, agents[i % len(agents)], body))
    res = cli("run", "--json", timeout=110)
    assert res.code == 0, res.err
    handled = dead = 0
    for body, (agent, mid) in sent.items():
        turns = user_turns(ws, agent, content=body)
        assert turns <= 1, f"{body} handled {turns} times"
        if turns:
            handled += 1
        else:
            assert dead_reason(ws, mid), f"{body} was lost: neither handled nor dead-lettered"
            dead += 1
    assert handled + dead == 200 and handled > 150, (handled, dead)
    kinds = {
        r.get("error", "")
        for r in map(json.loads, (ws / ".agents" / "trace.jsonl").read_text().splitlines())
        if r["event"] == "retry"
    }
    assert kinds, "with 30% faults some turns must have been retried"
    check_state(ws)


def test_a_model_that_never_answers_in_time_is_dead_lettered_with_the_reason(cli, llm, ws):
    (ws / "agents.toml").write_text(
        'version = 1\nmodel = "m"\n[limits]\nmodel_timeout = 0.3\nmodel_retries = 0\nretry_backoff = 0.01\nmax_attempts = 2\n'
    )
    for i in range(3):
        write_agent(ws, f"s{i}")
    llm.fault_rate, llm.fault_kinds, llm.timeout_delay = 1.0, ("timeout",), 0.8
    ids = [publish(ws, f"s{i}", "hello?") for i in range(3)]
    cli.ok("run")
    for mid in ids:
        assert "timed out" in (dead_reason(ws, mid) or "")
    check_state(ws)


def test_dropped_connections_and_429s_are_retried_to_success(cli, llm, ws):
    write_agent(ws, "alice")
    llm.fault_rate, llm.fault_kinds = 0.5, ("disconnect", "429")
    ids = [publish(ws, "alice", f"n{i}") for i in range(10)]
    cli.ok("run")
    for i, mid in enumerate(ids):
        assert user_turns(ws, "alice", content=f"n{i}") == 1 or dead_reason(ws, mid)
    assert sum(user_turns(ws, "alice", content=f"n{i}") for i in range(10)) >= 8
    check_state(ws)


# -------------------------------------------------------------------------------------- filesystem faults

PRODUCER_FAULTS = ["write:ENOSPC", "write:EIO", "fsync:EIO", "link:EIO", "link:ENOSPC", "append:EIO", "rename:EIO"]


@pytest.mark.parametrize("fault", PRODUCER_FAULTS)
def test_producer_on_a_failing_disk_tells_the_truth(cli, llm, ws, fault):
    """Exit 0 if and only if the message is queued; on a storage error exit 8, one line, nothing in new/
    (otherwise a user who retries the failed send gets the message handled twice)."""
    write_agent(ws, "alice")
    publish(ws, "alice", "warm-up")  # the state folders exist: the fault hits the message itself
    before = set(queue_names(ws, "new"))
    res = cli("send", "alice", "hello", "--no-wait", env={"LETTA_CLI_FAIL_AT": fault})
    assert "Traceback" not in res.err and res.code in (0, 8), res.err
    added = set(queue_names(ws, "new")) - before
    if res.code == 8:
        assert len(res.err.splitlines()) == 1 and "cannot write" in res.err, res.err
        assert added == set(), f"send failed (exit 8) but its message was queued: {added}"
    else:
        assert len(added) == 1 and res.out.strip() in next(iter(added))
    assert queue_names(ws, "tmp") == [], "a temp file was left in queue/tmp"
    cli.ok("run")
    assert user_turns(ws, "alice", content="hello") == (1 if res.code == 0 else 0)
    check_state(ws)


def relay_model(body):
    if tool_results(body):
        return text("done")
    inbound = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if inbound.startswith("fwd"):
        return call("send_message_to_agent_async", other_agent_id="bob", message="relay " + inbound)
    return text("ok")


SCHEDULER_FAULTS = ["append:EIO", "append:ENOSPC", "link:EIO", "rename:EIO", "write:ENOSPC", "fsync:EIO"]


@pytest.mark.parametrize("fault", SCHEDULER_FAULTS)
def test_scheduler_on_a_failing_disk_stops_cleanly_then_recovers(cli, llm, ws, fault):
    write_agent(ws, "alice")
    write_agent(ws, "bob")
    llm.on("alice", relay_model)
    bodies = ["fwd one", "plain two", "fwd three"]
    ids = [publish(ws, "alice", b) for b in bodies]
    res = cli("run", env={"LETTA_CLI_FAIL_AT": fault})
    assert res.code == 8, f"the scheduler carried on through {fault}: exit {res.code} {res.err}"
    assert len(res.err.splitlines()) == 1 and "Traceback" not in res.err, res.err
    assert "injected" in res.err
    handled_before = sum(user_turns(ws, "alice", content=b) for b in bodies)
    assert handled_before < len(bodies), "it should stop at the first failure, not carry on"
    check_state(ws, drained=False)
    cli.ok("run")
    for body, _mid in zip(bodies, ids, strict=False):
        assert user_turns(ws, "alice", content=body) == 1, body
    assert user_turns(ws, "bob", contains="relay fwd one") == 1
    assert user_turns(ws, "bob", contains="relay fwd three") == 1
    check_state(ws)


def test_waiting_send_on_a_failing_disk_exits_8(cli, llm, ws):
    write_agent(ws, "alice")
    publish(ws, "alice", "warm-up")
    res = cli("send", "alice", "hello", env={"LETTA_CLI_FAIL_AT": "link:EIO"})
    assert res.code == 8 and len(res.err.splitlines()) == 1 and "Traceback" not in res.err, res.err
    assert os.listdir(ws / ".agents" / "queue" / "tmp") == []
