"""`agents broadcast --tags T [--tags T]... [MESSAGE|-]`: one message to every agent having ALL the tags.

Output: a table (agent, reply), or with --json an array of {"agent", "reply", "error"}; --no-wait prints the
message ids; exit 0 when every agent answered, 3 when no agent matches, 6 on --timeout, 7 when any failed.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from tests.fakellm import agent_of, error, last_user_text, text
from tests.test_multiagent import REQUEST, SUB, agent, daemon, set_limits

FLEET = {"w1": ["worker", "user-456"], "w2": ["worker", "user-456"], "w3": ["worker", "user-123"], "boss": ["boss"]}


def fleet(ws, llm, **extra):
    for name, tags in {**FLEET, **extra}.items():
        agent(ws, name, tags)
        llm.on(name, lambda body, name=name: text(f"{name}: {last_user_text(body)}"))


def one_line_error(res, code, *needles):
    assert res.code == code, f"expected exit {code}, got {res.code}: {res.err}"
    assert "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agents: error: "), res.err
    for needle in needles:
        assert needle in lines[0]


def test_broadcast_json_reaches_exactly_the_tagged_agents(cli, llm, ws):
    fleet(ws, llm)
    res = cli("broadcast", "--tags", "worker", "--tags", "user-456", "status?", "--json", timeout=SUB)
    assert res.code == 0, res.err
    rows = res.json()
    assert rows == [
        {"agent": "w1", "reply": "w1: status?", "error": None},
        {"agent": "w2", "reply": "w2: status?", "error": None},
    ]
    assert {agent_of(r) for r in llm.requests} == {"w1", "w2"}
    # a message from a person carries no agent prefix
    assert last_user_text(llm.requests_for("w1")[0]) == "status?"


def test_broadcast_table_output_and_comma_separated_tags(cli, llm, ws):
    fleet(ws, llm)
    res = cli("broadcast", "-t", "worker,user-456", "hello", timeout=SUB)
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert any("agent" in line and "reply" in line for line in lines)
    for name in ("w1", "w2"):
        assert any(name in line and f"{name}: hello" in line for line in lines), res.out
    assert "w3" not in res.out and "boss" not in res.out


def test_broadcast_reads_the_message_from_stdin(cli, llm, ws):
    fleet(ws, llm)
    res = cli("broadcast", "-t", "user-123", "-", "--json", input="from a pipe\n", timeout=SUB)
    assert res.code == 0, res.err
    assert res.json() == [{"agent": "w3", "reply": "w3: from a pipe", "error": None}]
    res = cli("broadcast", "-t", "user-123", "--json", input="no dash either", timeout=SUB)
    assert res.code == 0, res.err
    assert res.json()[0]["reply"] == "w3: no dash either"


def test_broadcast_from_an_agent_excludes_it_and_uses_the_request_prefix(cli, llm, ws):
    fleet(ws, llm, lead=["worker", "user-456"])
    res = cli("broadcast", "--from", "lead", "-t", "worker,user-456", "report", "--json", timeout=SUB)
    assert res.code == 0, res.err
    assert [r["agent"] for r in res.json()] == ["w1", "w2"]
    assert llm.requests_for("lead") == []
    assert last_user_text(llm.requests_for("w2")[0]) == REQUEST.format("lead") + "report"


def test_broadcast_with_no_match_exits_3(cli, llm, ws):
    fleet(ws, llm)
    one_line_error(cli("broadcast", "-t", "worker,nonexistent", "anyone?"), 3, "nonexistent")
    # only the sender has the tag: nobody else to ask
    one_line_error(cli("broadcast", "--from", "boss", "-t", "boss", "anyone?"), 3)
    assert llm.requests == []
    assert not list(ws.glob(".agents/queue/new/*.json"))  # nothing was published


def test_broadcast_with_empty_tags_is_a_usage_error(cli, llm, ws):
    fleet(ws, llm)
    one_line_error(cli("broadcast", "-t", ",", "everyone?"), 2, "tags")
    assert llm.requests == []


def test_broadcast_exits_7_when_any_agent_failed(cli, llm, ws):
    fleet(ws, llm, broken=["worker", "user-456"])
    llm.on("broken", lambda body: error(400))
    res = cli("broadcast", "-t", "worker,user-456", "status?", "--json", timeout=SUB)
    assert res.code == 7, res.err
    rows = {r["agent"]: r for r in res.json()}
    assert rows["w1"] == {"agent": "w1", "reply": "w1: status?", "error": None}
    assert rows["w2"]["error"] is None
    assert rows["broken"]["reply"] == "" and "400" in rows["broken"]["error"]
    # the table shows the failure too
    res = cli("broadcast", "-t", "worker,user-456", "again?", timeout=SUB)
    assert res.code == 7
    assert any("broken" in line and "ERROR" in line for line in res.out.splitlines()), res.out


def test_broadcast_no_wait_publishes_and_returns(cli, llm, ws):
    fleet(ws, llm)
    res = cli("broadcast", "-t", "worker", "later", "--no-wait", "--json")
    assert res.code == 0, res.err
    rows = res.json()
    assert [(r["agent"], r["status"]) for r in rows] == [("w1", "queued"), ("w2", "queued"), ("w3", "queued")]
    queued = {p.name.split(".")[0] for p in (ws / ".agents" / "queue" / "new").glob("*.json")}
    assert queued == {r["message_id"] for r in rows}
    assert llm.requests == []
    # plain output: one message id a line
    res = cli("broadcast", "-t", "user-123", "later too", "--no-wait")
    assert res.code == 0 and len(res.out.split()) == 1
    # a scheduler run handles them all
    cli.ok("run", timeout=SUB)
    assert sorted(agent_of(r) for r in llm.requests) == ["w1", "w2", "w3", "w3"]
    assert not list((ws / ".agents" / "queue" / "new").glob("*.json"))


def test_broadcast_timeout_exits_6_reports_what_came_and_leaves_the_rest_queued(cli, llm, ws):
    set_limits(ws, model_timeout=20)
    fleet(ws, llm)
    llm.on("w2", lambda body: text("too late", delay=8))
    res = cli("broadcast", "-t", "worker,user-456", "quick!", "--timeout", "4", "--json", timeout=SUB)
    assert res.code == 6, res.err
    assert "Traceback" not in res.err and "4s" in res.err
    # w1 answered; w2's message stays queued for a later run
    assert len(list((ws / ".agents" / "turns").glob("*.json"))) == 1  # w1's turn is committed
    assert len(list((ws / ".agents" / "queue" / "new").glob("*.json"))) == 1
    # ours vs Letta: a broadcast that times out still reports the replies that came
    rows = {r["agent"]: r for r in json.loads(res.out)}
    assert rows["w1"] == {"agent": "w1", "reply": "w1: quick!", "error": None}
    assert rows["w2"]["reply"] == "" and "no reply" in rows["w2"]["error"]


def test_broadcast_to_fifty_agents_runs_them_concurrently(cli, llm, ws):
    for i in range(50):
        agent(ws, f"n{i:02d}", ["swarm"])
    arrivals: list[float] = []

    def worker(body: dict):
        arrivals.append(time.monotonic())
        return text(f"{agent_of(body)} ok", delay=0.2)

    llm.default = worker
    started = time.monotonic()
    res = cli("broadcast", "-t", "swarm", "go", "--json", timeout=SUB)
    elapsed = time.monotonic() - started
    assert res.code == 0, res.err
    assert [r["reply"] for r in res.json()] == [f"n{i:02d} ok" for i in range(50)]
    # one after the other, the last model call would start >= 49 x 200 ms after the first
    span = max(arrivals) - min(arrivals)
    assert span < 3, f"the 50 model calls were spread over {span:.1f}s: they did not run concurrently"
    assert elapsed < 10, f"the whole command took {elapsed:.1f}s"


def test_broadcast_wider_than_the_chain_turn_budget_reaches_everyone(cli, llm, ws):
    """A fan-out from a person is not a loop: 70 agents (more than a chain_turn_budget of 64) all answer."""
    set_limits(ws, chain_turn_budget=64)
    for i in range(70):
        agent(ws, f"m{i:02d}", ["many"])
    res = cli("broadcast", "-t", "many", "go", "--json", timeout=SUB)
    rows = res.json()
    failed = [r for r in rows if r["error"]]
    assert not failed, f"{len(failed)} of 70 failed, e.g. {failed[0]}"
    assert res.code == 0


@pytest.mark.parametrize("use_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_broadcast_works_the_same_with_a_daemon(cli, llm, ws, use_daemon):
    fleet(ws, llm)
    with daemon(cli, llm, "boss") if use_daemon else contextlib.nullcontext() as stopped:
        res = cli("broadcast", "-t", "worker", "all hands", "--json", timeout=SUB)
    assert res.code == 0, res.err
    assert [(r["agent"], r["reply"]) for r in res.json()] == [(n, f"{n}: all hands") for n in ("w1", "w2", "w3")]
    if use_daemon:
        assert stopped["code"] == 0, stopped["err"]
        assert "Traceback" not in stopped["err"]
