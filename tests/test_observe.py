"""Seeing everything: history, the causal trace, token usage, the queue, status and live progress.

Every test drives the real CLI against the scripted model server and checks what a user would see.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from letta_cli.app.usage import parse_since
from letta_cli.core.ids import derived_id, new_id
from tests.fakellm import call, error, text


def agent(cli, name, *extra):
    cli.ok("create", name, *extra)


def team(cli, llm):
    """A supervisor broadcasts to two workers; worker w1 asks an expert and waits for the reply."""
    agent(cli, "boss", "--tag", "lead")
    agent(cli, "w1", "--tag", "worker")
    agent(cli, "w2", "--tag", "worker")
    agent(cli, "expert", "--tag", "oracle")
    llm.script(
        "boss", [call("send_message_to_agents_matching_all_tags", tags=["worker"], message="report"), text("all done")]
    )
    llm.script(
        "w1",
        [call("send_message_to_agent_and_wait_for_reply", other_agent_id="expert", message="help?"), text("w1 ok")],
    )
    llm.script("w2", [text("w2 ok")])
    llm.script("expert", [text("42")])


def test_a_reply_to_a_reply_gets_a_fresh_id():
    """A turn's n-th message id derives from the turn's message; two levels down it must not come back to an
    id already in the chain (it did: the nested wait above was dropped as "already known" and hung)."""
    root = new_id()
    child = derived_id(root, 0)
    assert len({root, child, derived_id(child, 0), derived_id(child, 1), derived_id(root, 1)}) == 5
    assert derived_id(root, 0) == child  # deterministic: a replayed turn re-sends the same ids


def flatten(nodes):
    for node in nodes:
        yield node
        yield from flatten(node["children"])


def sums(rows):
    total = Counter()
    for row in rows:
        total.update(prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"], model_calls=1)
    return total


# -------------------------------------------------------------------------------------------------- trace


def test_trace_of_a_broadcast_with_a_nested_wait(cli, llm, ws):
    team(cli, llm)
    assert cli.ok("send", "boss", "status please").out == "all done\n"

    tree = cli.ok("trace", "--last", "--json").json()
    [root] = tree["messages"]
    assert (root["sender"], root["recipient"], root["kind"], root["hop"]) == ("user", "boss", "user", 0)
    assert root["turn"]["status"] == "ok" and root["turn"]["reply"] == ["all done"]
    assert [t["tool"] for t in root["turn"]["tool_calls"]] == ["send_message_to_agents_matching_all_tags"]
    assert root["turn"]["model_calls"] == 2

    workers = {c["recipient"]: c for c in root["children"]}
    assert set(workers) == {"w1", "w2"}
    for child in workers.values():
        assert (child["sender"], child["kind"], child["hop"], child["body"]) == ("boss", "broadcast", 1, "report")
        assert child["reply_to"] == root["message_id"]
    assert workers["w2"]["children"] == [] and workers["w2"]["turn"]["reply"] == ["w2 ok"]
    [ask] = workers["w1"]["children"]
    assert (ask["sender"], ask["recipient"], ask["kind"], ask["hop"]) == ("w1", "expert", "request", 2)
    assert ask["turn"]["reply"] == ["42"] and ask["children"] == []
    [wait_call] = workers["w1"]["turn"]["tool_calls"]
    assert wait_call["tool"] == "send_message_to_agent_and_wait_for_reply" and wait_call["error"] is False
    assert "42" in wait_call["result"]

    nodes = list(flatten(tree["messages"]))
    assert len(nodes) == 4
    for node in nodes:
        turn = node["turn"]
        assert turn["duration_ms"] >= 0 and turn["prompt_tokens"] > 0 and turn["completion_tokens"] > 0
    # the same tree from any message of the chain, by its whole id or the short form the tree prints
    assert cli.ok("trace", ask["message_id"], "--json").json() == tree
    readable = cli.ok("trace", "…" + ask["message_id"][-12:]).out
    assert readable == cli.ok("trace", "--last").out
    assert ask["message_id"][-12:] in readable
    for needle in (
        "user → boss",
        "boss → w1",
        "w1 → expert",
        "request, hop 2",
        "reply: 42",
        "send_message_to_agent_and_wait_for_reply",
    ):
        assert needle in readable


def test_trace_unknown_id_and_bad_usage(cli, llm, ws):
    agent(cli, "alice")
    res = cli("trace", "--last")
    assert res.code == 3 and len(res.err.strip().splitlines()) == 1
    cli.ok("send", "alice", "hi")
    res = cli("trace", "00000000-dead-7000-8000-000000000000")
    assert res.code == 3 and res.err.startswith("agents: error: ") and len(res.err.strip().splitlines()) == 1
    assert cli("trace").code == 2


def test_trace_dedupes_a_replayed_turn_end(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("first")])
    cli.ok("send", "alice", "hi")
    trace = ws / ".agents" / "trace.jsonl"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    [end] = [e for e in events if e["event"] == "turn_end"]
    with trace.open("a") as fh:  # what a crash between commit and ack leaves: the same turn_end again
        fh.write(json.dumps({**end, "ts": datetime.now(UTC).isoformat()}) + "\n")
    [root] = cli.ok("trace", "--last", "--json").json()["messages"]
    assert root["turn"]["reply"] == ["first"] and root["children"] == []


# -------------------------------------------------------------------------------------------------- usage


def test_usage_matches_what_the_server_reported(cli, llm, ws):
    team(cli, llm)
    cli.ok("send", "boss", "status please")
    report = cli.ok("usage", "--json").json()
    sent = sums(llm.usage_sent)
    total = report["total"]
    assert (total["prompt_tokens"], total["completion_tokens"], total["model_calls"]) == (
        sent["prompt_tokens"],
        sent["completion_tokens"],
        sent["model_calls"],
    )
    assert total["total_tokens"] == sent["prompt_tokens"] + sent["completion_tokens"]
    for row in report["agents"]:
        mine = sums(u for u in llm.usage_sent if u["agent"] == row["agent"])
        assert (row["prompt_tokens"], row["completion_tokens"], row["model_calls"]) == (
            mine["prompt_tokens"],
            mine["completion_tokens"],
            mine["model_calls"],
        )
    assert {r["agent"] for r in report["agents"]} == {"boss", "w1", "w2", "expert"}
    [chain] = report["chains"]
    assert chain["agents"] == ["boss", "expert", "w1", "w2"] and chain["total_tokens"] == total["total_tokens"]
    assert total["cost_usd"] is None and report["budgets"] == {"chain_token_budget": None, "agent_token_budget": None}

    only = cli.ok("usage", "w1", "--json").json()
    assert [r["agent"] for r in only["agents"]] == ["w1"] and only["total"]["model_calls"] == 2
    assert cli.ok("usage", "--since", "1h", "--json").json()["total"] == total
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert cli.ok("usage", "--since", future, "--json").json()["total"]["model_calls"] == 0
    assert cli("usage", "--since", "yesterday").code == 2
    assert cli("usage", "nobody").code == 3
    assert "total: 6 model calls" in cli.ok("usage").out


def test_usage_counts_retried_attempts_and_prices(cli, llm, ws):
    (ws / "agents.toml").write_text(
        (ws / "agents.toml").read_text()
        + "chain_token_budget = 100000\n[prices.fake-model]\nprompt = 1.0\ncompletion = 2.0\n"
    )
    agent(cli, "alice")
    # the first attempt's model call succeeds, then its tool call's follow-up fails for good: a retry
    llm.script("alice", [call("core_memory_append", label="notes", content="x"), error(500), error(500), error(500)])
    llm.script("alice", [call("core_memory_append", label="notes", content="x"), text("done")])
    cli.ok("send", "alice", "hi")
    report = cli.ok("usage", "--json").json()
    sent = sums(llm.usage_sent)
    assert report["total"]["model_calls"] == sent["model_calls"] == 3
    assert report["total"]["prompt_tokens"] == sent["prompt_tokens"]
    expected = (sent["prompt_tokens"] * 1.0 + sent["completion_tokens"] * 2.0) / 1e6
    assert report["total"]["cost_usd"] == pytest.approx(expected)
    assert report["budgets"]["chain_token_budget"] == 100000
    [root] = cli.ok("trace", "--last", "--json").json()["messages"]
    assert root["turn"]["attempts"] == 2 and len(root["turn"]["retries"]) == 1
    assert root["turn"]["model_calls"] == 2  # the committed attempt; usage above counts all three


def test_parse_since():
    base = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("10m", base) == base - timedelta(minutes=10)
    assert parse_since("2h", base) == base - timedelta(hours=2)
    assert parse_since("1d", base) == base - timedelta(days=1)
    assert parse_since("2025-01-30T00:00:00Z") == datetime(2025, 1, 30, tzinfo=UTC)
    assert parse_since("2025-01-30").tzinfo is not None


# ------------------------------------------------------------------------------------------------ history


def test_history_json_and_readable(cli, llm, ws):
    team(cli, llm)
    cli.ok("send", "boss", "status please")
    stored = (ws / ".agents" / "history" / "w1.jsonl").read_text().splitlines()
    res = cli.ok("history", "w1", "--json")
    assert res.out.splitlines() == stored
    entries = [json.loads(line) for line in res.out.splitlines()]
    assert [e["role"] for e in entries] == ["user", "assistant", "tool", "assistant"]

    readable = cli.ok("history", "w1").out
    assert "from boss: report" in readable and "Incoming message" not in readable
    assert "→ send_message_to_agent_and_wait_for_reply(other_agent_id=expert) ✓" in readable
    assert "assistant: w1 ok" in readable

    llm.script("w2", [text("second")])
    cli.ok("send", "w2", "again")
    last = [json.loads(line) for line in cli.ok("history", "w2", "-n", "1", "--json").out.splitlines()]
    assert [e["content"] for e in last] == ["again", "second"]
    assert "user: again" in cli.ok("history", "w2", "-n", "1").out
    assert cli("history", "nobody").code == 3


def test_history_tool_calls_fold_into_one_line(cli, llm, ws):
    agent(cli, "alice", "--memory", "notes=")
    llm.script("alice", [call("core_memory_append", label="notes", content="likes tea"), text("noted")])
    cli.ok("send", "alice", "remember tea")
    lines = cli.ok("history", "alice").out.splitlines()
    folded = [line for line in lines if "core_memory_append" in line]
    assert len(folded) == 1 and folded[0].strip().startswith("→ core_memory_append(label=notes) ✓")


def test_history_follow_prints_new_turns_and_stops_on_sigterm(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("one"), text("two")])
    cli.ok("send", "alice", "first")
    proc = cli.popen(
        "history", "alice", "--follow", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    try:
        time.sleep(1.0)
        cli.ok("send", "alice", "second")
        deadline, seen = time.time() + 10, []
        while time.time() < deadline and len(seen) < 4:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                seen.append(json.loads(proc.stdout.readline()))
        assert [e["content"] for e in seen] == ["first", "one", "second", "two"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read()


# -------------------------------------------------------------------------------------------------- queue


def test_queue_list_show_retry_purge_a_dead_letter(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [error(400)])
    res = cli("send", "alice", "doomed", "--json")
    assert res.code == 7
    mid = res.json()["message_id"]

    items = cli.ok("queue", "list", "--json").json()
    [dead] = [i for i in items if i["folder"] == "dead"]
    assert dead["id"] == mid and dead["attempts"] == 1 and "400" in dead["error"]
    assert (dead["sender"], dead["recipient"]) == ("user", "alice")
    assert [i["id"] for i in cli.ok("queue", "--json").json()] == [i["id"] for i in items]
    assert mid[-12:] in cli.ok("queue").out

    shown = cli.ok("queue", "show", mid[-10:], "--json").json()
    assert shown["message"]["body"] == "doomed" and shown["folder"] == "dead" and "400" in shown["error"]
    assert "doomed" in cli.ok("queue", "show", mid).out
    assert cli("queue", "show", "ffffffff").code == 3

    status = cli.ok("status", "--json").json()
    assert status["dead_letters"] == 1 and status["queue"]["dead"] == 1 and status["agents"] == 1
    assert status["scheduler"] == {"running": False, "pid": None, "kind": None} and status["daemon"] is None

    # retry: back to new/ with attempts reset, and this time the model answers
    assert cli.ok("queue", "retry", mid, "--json").json() == {
        "message_id": mid,
        "from": "dead",
        "to": "new",
        "attempts": 0,
    }
    assert (ws / ".agents" / "queue" / "new" / f"{mid}.json").exists()
    assert not (ws / ".agents" / "queue" / "dead" / f"{mid}.error.json").exists()
    assert cli.ok("status", "--json").json()["queue"]["new"] == 1
    assert cli("queue", "retry", mid).code == 5  # not a dead letter any more
    llm.script("alice", [text("alive")])
    cli.ok("run")
    record = json.loads((ws / ".agents" / "turns" / f"{mid}.json").read_text())
    assert record["status"] == "ok" and record["reply"] == ["alive"]
    [root] = cli.ok("trace", mid, "--json").json()["messages"]
    assert root["turn"]["status"] == "ok" and root["turn"]["reply"] == ["alive"]
    assert root["turn"]["retries"][0]["error"].startswith("dead: model endpoint answered HTTP 400")

    # purge: needs --yes when not at a terminal
    llm.script("alice", [error(400)])
    assert cli("send", "alice", "doomed again").code == 7
    assert cli("queue", "purge", "--dead").code == 2
    assert cli("queue", "purge").code == 2
    purged = cli.ok("queue", "purge", "--dead", "--yes", "--json").json()["purged"]
    assert len(purged) == 1
    assert os.listdir(ws / ".agents" / "queue" / "dead") == []
    assert cli.ok("queue", "list", "--json").json() == []


def test_status_json(cli, llm, ws):
    res = cli.ok("status", "--json").json()
    assert res["scheduler"]["running"] is False and res["last_activity"] is None and res["agents"] == 0
    assert res["queue"] == {"new": 0, "cur": 0, "dead": 0, "corrupt": 0}
    agent(cli, "alice")
    cli.ok("send", "alice", "--no-wait", "later")
    res = cli.ok("status", "--json").json()
    assert res["queue"]["new"] == 1 and res["agents"] == 1 and res["last_event"] == "message"
    watch = cli.popen("run", "--watch", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            res = cli.ok("status", "--json").json()
            if res["scheduler"]["running"] and res["queue"]["new"] == 0 and res["last_event"] == "turn_end":
                break
            time.sleep(0.1)
        assert res["scheduler"] == {"running": True, "pid": watch.pid, "kind": "scheduler"}
        assert "running (pid" in cli.ok("status").out
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=10)


# ----------------------------------------------------------------------------------------- live progress


def test_verbose_streams_turn_events_to_stderr_only(cli, llm, ws):
    team(cli, llm)
    res = cli.ok("-v", "send", "boss", "status please")
    assert res.out == "all done\n"
    lines = res.err.splitlines()
    model_calls = [line for line in lines if " model_call " in line]
    tool_calls = [line for line in lines if " tool_call " in line]
    assert len(model_calls) == 6 and len(tool_calls) == 2
    assert any("w1" in line and "tokens" in line and "ms" in line for line in model_calls)
    assert any("send_message_to_agent_and_wait_for_reply(other_agent_id=expert) ✓" in line for line in tool_calls)
    assert "\x1b" not in res.err  # not a terminal: no spinner, no escape codes


def test_verbose_while_another_process_serves(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [call("core_memory_append", label="notes", content="x"), text("done")])
    watch = cli.popen("run", "--watch", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not cli.ok("status", "--json").json()["scheduler"]["running"] and time.time() < deadline:
            time.sleep(0.05)
        res = cli.ok("-v", "send", "alice", "hi")
        assert res.out == "done\n"
        assert sum(" model_call " in line for line in res.err.splitlines()) == 2
        assert sum(" tool_call " in line for line in res.err.splitlines()) == 1
    finally:
        watch.send_signal(signal.SIGTERM)
        watch.wait(timeout=10)


def test_quiet_pipe_means_nothing_on_stderr(cli, llm, ws):
    agent(cli, "alice")
    res = cli.ok("send", "alice", "hi")
    assert res.err == "" and res.out == "ok from alice\n"


def test_spinner_on_a_terminal_goes_to_stderr(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("slow answer", delay=1.0)])
    leader, follower = pty.openpty()
    proc = cli.popen("send", "alice", "hi", stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    err = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 10)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    out = proc.stdout.read()
    proc.wait(timeout=10)
    os.close(leader)
    assert out == b"slow answer\n"
    assert b"alice" in err and b"working" in err
