"""Letta's multi-agent acceptance scenario with a custom tool: workers tagged `worker` have a `roll_dice`
command tool; the supervisor's send_message_to_agents_matching_all_tags collects one reply per worker, each
from a turn that called the tool. The whole exchange runs through the real scheduler in-process (what
`agents send` does), the workers' model is the scripted server behind the real openai SDK, and the dice
really roll in a child process per call."""

from __future__ import annotations

import json
import tomllib

import tomli_w

from tests import turnkit
from tests.fakellm import agent_of, call, text, tool_results
from tests.harness import history, write_agent

BROADCAST = "send_message_to_agents_matching_all_tags"
ROLL = """
import json, random, sys
sides = json.load(sys.stdin)["sides"]
print(random.randint(1, sides))
"""
WORKERS = ("worker-1", "worker-2", "worker-3")


def test_each_broadcast_reply_comes_from_a_turn_that_rolled_the_dice(cli, llm, ws):
    (ws / "roll_dice.py").write_text(ROLL)
    config = tomllib.loads((ws / "agents.toml").read_text())
    config["base_url"] = llm.url  # in-process turns read the endpoint from the workspace
    config["tools"] = {
        "roll_dice": {
            "description": "Roll a die with the given number of sides and return the number.",
            "python": "roll_dice.py",
            "args": {"sides": "integer: how many sides the die has"},
            "idempotent": True,
        }
    }
    (ws / "agents.toml").write_text(tomli_w.dumps(config))
    for name in WORKERS:
        write_agent(ws, name, tags=["worker"], extra='tools = ["roll_dice", "send_message"]')
    write_agent(ws, "bystander", tags=["other"], extra='tools = ["send_message"]')
    write_agent(ws, "supervisor", extra=f'tools = ["{BROADCAST}"]')

    def worker(body: dict):
        rolled = tool_results(body)
        return text(f"I rolled a {rolled[0]}") if rolled else call("roll_dice", sides=6)

    for name in WORKERS:
        llm.on(name, worker)
    llm.script("supervisor", [call(BROADCAST, message="Roll a six-sided die; tell me the number.", tags=["worker"])])
    llm.on("supervisor", lambda body: text(tool_results(body)[0]))

    record = turnkit.send(ws, "supervisor", "Ask the workers to roll.", timeout=60)
    assert record.status == "ok", record.error
    replies = {r["agent_id"]: r["response"] for r in json.loads(record.reply[0])}
    assert set(replies) == set(WORKERS)  # one reply per worker, none from the bystander
    assert "bystander" not in {agent_of(r) for r in llm.requests}

    trace = [json.loads(line) for line in (ws / ".agents" / "trace.jsonl").read_text().splitlines()]
    rolls = {e["agent"]: e for e in trace if e["event"] == "tool_call" and e["tool"] == "roll_dice"}
    assert set(rolls) == set(WORKERS)
    for name in WORKERS:
        [tool_entry] = [h for h in history(ws, name) if h["role"] == "tool"]
        number = tool_entry["content"]
        assert tool_entry["name"] == "roll_dice" and 1 <= int(number) <= 6
        assert replies[name] == [f"I rolled a {number}"]  # the reply is the roll its own turn made
        assert rolls[name]["exit_code"] == 0 and rolls[name]["result"] == number
    # the supervisor's model was offered only the broadcast tool; the workers their two
    [first] = [r for r in llm.requests_for("supervisor") if not tool_results(r)]
    assert [t["function"]["name"] for t in first["tools"]] == [BROADCAST]
    worker_tools = [t["function"]["name"] for t in llm.requests_for("worker-1")[0]["tools"]]
    assert worker_tools == ["send_message", "roll_dice"]
