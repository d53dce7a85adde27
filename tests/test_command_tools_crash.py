"""Command tools and crashes: the real `agents run` SIGKILLed (LETTA_CLI_CRASH_AT) between a tool call and
the turn's commit, restarted, drained. A tool not marked idempotent never runs twice for one call; a recorded
result is handed to the replayed turn without running anything."""

from __future__ import annotations

import json
import signal
import sys
import textwrap

import pytest

from tests.fakellm import call, text, tool_results
from tests.harness import check_state, history, publish, write_agent

KILLED = -signal.SIGKILL
COUNT = """
import json, sys
args = json.load(sys.stdin)
with open("count.txt", "a") as fh:
    fh.write(json.dumps(args) + "\\n")
print("counted", args["n"])
"""


def counter(ws, *, idempotent: bool) -> None:
    (ws / "count.py").write_text(textwrap.dedent(COUNT))
    tool = {"command": [sys.executable, "count.py"], "args": {"n": "integer"}, "idempotent": idempotent}
    with open(ws / "agents.toml", "a") as fh:
        fh.write(f'\n[tools.count]\ncommand = {json.dumps(tool["command"])}\nargs = {{ n = "integer" }}\n')
        fh.write(f"idempotent = {json.dumps(idempotent)}\n")
    write_agent(ws, "alice", extra='tools = ["count"]')


def model(body: dict):
    """Deterministic: a replayed turn asks what the first attempt asked."""
    seen = tool_results(body)
    return text(f"done: {seen[0]}") if seen else call("count", n=1)


def runs(ws) -> int:
    path = ws / "count.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def crash(cli, spec: str) -> None:
    res = cli("run", env={"LETTA_CLI_CRASH_AT": spec})
    assert res.code == KILLED, f"crash point {spec} was never reached (exit {res.code}): {res.err}"


def answered(ws, mid: str) -> dict:
    [assistant] = [h for h in history(ws, "alice") if h["role"] == "assistant" and not h.get("tool_calls")]
    record = json.loads((ws / ".agents" / "turns" / f"{mid}.json").read_text())
    assert record["status"] == "ok" and record["reply"] == [assistant["content"]]
    return record


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_crash_after_the_command_ran_but_before_its_result_was_recorded(cli, llm, ws, idempotent):
    counter(ws, idempotent=idempotent)
    llm.on("alice", model)
    mid = publish(ws, "alice", "count once")
    crash(cli, "after_tool_exit")
    assert runs(ws) == 1  # it ran; the scheduler died before writing down the result
    cli.ok("run")
    record = answered(ws, mid)
    if idempotent:  # allowed to run again, and did
        assert runs(ws) == 2 and record["reply"] == ["done: counted 1"]
    else:  # never twice: the model is told instead
        assert runs(ws) == 1
        [reply] = record["reply"]
        assert reply.startswith("done: Error: count: this call was started before an interruption")
    check_state(ws)


def test_a_crash_after_the_result_was_recorded_replays_it_without_running(cli, llm, ws):
    counter(ws, idempotent=False)
    llm.on("alice", model)
    mid = publish(ws, "alice", "count once")
    crash(cli, "after_model_call@2")  # the result is recorded and was read by the model; nothing committed
    cli.ok("run")
    assert runs(ws) == 1
    assert answered(ws, mid)["reply"] == ["done: counted 1"]
    assert not (ws / ".agents" / "tool_calls" / f"{mid}.jsonl").exists()  # committed: no longer needed
    events = [json.loads(line) for line in (ws / ".agents" / "trace.jsonl").read_text().splitlines()]
    assert [e["replayed"] for e in events if e["event"] == "tool_call"] == [False, True]
    check_state(ws)


def test_a_crash_before_a_non_idempotent_command_started_does_not_run_it_later(cli, llm, ws):
    """The intent is on disk before the command starts: whether it started or not cannot be told, so no."""
    counter(ws, idempotent=False)
    llm.on("alice", model)
    mid = publish(ws, "alice", "count once")
    crash(cli, "after_tool_started")
    cli.ok("run")
    assert runs(ws) == 0
    assert "not run again" in answered(ws, mid)["reply"][0]
