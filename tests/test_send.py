"""`agents send` and `agents run` end to end: real CLI processes, real SDK, the scripted model server."""

import json
import signal
import subprocess
import time

from tests.fakellm import error, text
from tests.harness import write_agent


def agent(cli, name):
    """The agent's file, written directly: `agents create` has tests of its own, and a start-up costs ~0.5 s."""
    write_agent(cli.root, name)


def history(ws, name):
    path = ws / ".agents" / "history" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def turns_for(ws, name, body):
    return [h for h in history(ws, name) if h["role"] == "user" and h["content"] == body]


def test_send_prints_the_reply(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("Hello, human.")])
    res = cli.ok("send", "alice", "hi there")
    assert res.out == "Hello, human.\n"
    assert [h["role"] for h in history(ws, "alice")] == ["user", "assistant"]
    body = llm.requests_for("alice")[0]
    assert body["messages"][-1] == {"role": "user", "content": "hi there"}
    assert body["model"] == "fake-model"


def test_send_json_and_stdin(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("42")])
    res = cli.ok("send", "alice", "--json", input="what is\nthe answer?\n")
    data = res.json()
    assert set(data) >= {"message_id", "agent", "reply", "status", "usage"}
    assert data["reply"] == "42" and data["status"] == "ok" and data["agent"] == "alice"
    assert data["usage"]["prompt_tokens"] == llm.usage_sent[0]["prompt_tokens"]
    assert llm.requests_for("alice")[0]["messages"][-1]["content"] == "what is\nthe answer?"


def test_history_is_sent_back_on_the_next_turn(cli, llm, ws):
    agent(cli, "alice")
    cli.ok("send", "alice", "my name is Ada")
    cli.ok("send", "alice", "what is my name?")
    contents = [m["content"] for m in llm.requests_for("alice")[1]["messages"]]
    assert "my name is Ada" in contents and "ok from alice" in contents


def test_no_wait_then_run(cli, llm, ws):
    agent(cli, "alice")
    res = cli.ok("send", "alice", "later", "--no-wait")
    mid = res.out.strip()
    assert (ws / ".agents" / "queue" / "new" / f"{mid}.json").exists()
    assert llm.requests == []
    run = cli.ok("run", "--json")
    assert run.json() == {"handled": 1}
    assert json.loads((ws / ".agents" / "turns" / f"{mid}.json").read_text())["status"] == "ok"
    assert len(turns_for(ws, "alice", "later")) == 1


def test_eight_concurrent_sends_each_answered_exactly_once(cli, llm, ws):
    for name in ("alice", "bob"):
        agent(cli, name)
    llm.default = lambda body: text("re: " + body["messages"][-1]["content"], delay=0.05)
    procs = [
        cli.popen("send", "alice" if i % 2 else "bob", f"msg-{i}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1] for o in outs]
    for i, (out, _) in enumerate(outs):
        assert out.decode().strip() == f"re: msg-{i}"
    for i in range(8):
        assert len(turns_for(ws, "alice" if i % 2 else "bob", f"msg-{i}")) == 1
    assert len(llm.requests) == 8


def test_transient_model_errors_are_retried(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [error(429, retry_after=0.01), error(500), error(503), error(500), text("finally")])
    res = cli.ok("send", "alice", "hi", "--json")
    assert res.json()["reply"] == "finally"
    assert len(llm.requests) == 5  # SDK retries (2) plus one scheduler retry


def test_permanent_failure_goes_to_dead_with_nonzero_exit(cli, llm, ws):
    agent(cli, "alice")
    llm.on("alice", lambda body: error(400))
    res = cli("send", "alice", "hi", "--json")
    assert res.code == 7
    data = res.json()
    assert data["status"] == "dead" and "400" in data["error"]
    dead = ws / ".agents" / "queue" / "dead"
    assert (dead / f"{data['message_id']}.json").exists()
    assert "400" in json.loads((dead / f"{data['message_id']}.error.json").read_text())["error"]
    assert "Traceback" not in res.err


def test_repeated_server_errors_dead_letter_after_max_attempts(cli, llm, ws):
    (ws / "agents.toml").write_text(
        'model = "m"\n[limits]\nmax_attempts = 2\nretry_backoff = 0.01\nmodel_retries = 0\nmodel_timeout = 2\n'
    )
    agent(cli, "alice")
    llm.on("alice", lambda body: error(500))
    res = cli("send", "alice", "hi", "--json")
    assert res.code == 7 and res.json()["status"] == "dead"
    assert len(llm.requests) == 2


def test_corrupt_file_in_new_does_not_block_the_queue(cli, llm, ws):
    agent(cli, "alice")
    new = ws / ".agents" / "queue" / "new"
    cli.ok("send", "alice", "warm-up")
    bad = new / "01a00000-0000-7000-8000-000000000000.json"
    bad.write_text('{"version": 1, "recipient": ')
    (new / "notes.txt").write_text("hello")
    res = cli.ok("send", "alice", "still works")
    assert res.out.strip() == "ok from alice"
    corrupt = sorted(p.name for p in (ws / ".agents" / "queue" / "corrupt").iterdir())
    assert any(n.startswith("01a00000") and n.endswith(".json") for n in corrupt)
    assert "notes.txt" in corrupt


def test_unknown_agent_and_empty_or_huge_message(cli, llm, ws):
    agent(cli, "alice")
    res = cli("send", "alicia", "hi")
    assert res.code == 3 and "did you mean alice" in res.err
    res = cli("send", "alice", input="")
    assert res.code == 2 and "empty" in res.err
    res = cli("send", "alice", "-", input="x" * 10_000_000)
    assert res.code == 2 and "limit" in res.err and len(res.err.splitlines()) == 1
    assert not (ws / ".agents" / "queue" / "new").exists() or not list((ws / ".agents" / "queue" / "new").iterdir())
    assert llm.requests == []


def test_timeout_leaves_the_message_queued(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("slow", delay=3)])
    res = cli("send", "alice", "hi", "--timeout", "0.5")
    assert res.code == 6 and "no reply" in res.err
    assert cli.ok("run", "--json").json() == {"handled": 1}  # released, not lost
    assert len(turns_for(ws, "alice", "hi")) == 1


def test_kill_9_mid_turn_then_restart_loses_and_doubles_nothing(cli, llm, ws):
    agent(cli, "alice")
    mid = cli.ok("send", "alice", "important", "--no-wait").out.strip()
    llm.script("alice", [text("never delivered", delay=30)])
    proc = cli.popen("run")
    llm.wait_for_requests(1, timeout=20)  # the turn is in the middle of its model call
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert (ws / ".agents" / "queue" / "cur").iterdir().__next__().name.startswith(mid)
    assert cli.ok("run", "--json").json() == {"handled": 1}
    assert len(turns_for(ws, "alice", "important")) == 1
    record = json.loads((ws / ".agents" / "turns" / f"{mid}.json").read_text())
    assert record["status"] == "ok" and record["attempts"] == 2


def test_crash_after_commit_is_applied_once_on_restart(cli, llm, ws):
    agent(cli, "alice")
    mid = cli.ok("send", "alice", "once", "--no-wait").out.strip()
    res = cli("run", env={"LETTA_CLI_CRASH_AT": "after_history_append"})
    assert res.code == -signal.SIGKILL
    assert len(turns_for(ws, "alice", "once")) == 1
    cli.ok("run")
    assert len(turns_for(ws, "alice", "once")) == 1
    assert json.loads((ws / ".agents" / "turns" / f"{mid}.json").read_text())["reply"] == ["ok from alice"]
    assert len(llm.requests) == 1  # the committed turn was not run again
    assert not list((ws / ".agents" / "queue" / "cur").iterdir())


def test_second_scheduler_is_refused_and_sigterm_stops_cleanly(cli, llm, ws):
    agent(cli, "alice")
    llm.script("alice", [text("slow", delay=30)])
    mid = cli.ok("send", "alice", "hi", "--no-wait").out.strip()
    watcher = cli.popen("run", "--watch", stderr=subprocess.PIPE)
    llm.wait_for_requests(1, timeout=20)
    second = cli("run")
    assert second.code == 5 and "already running" in second.err
    started = time.monotonic()
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(timeout=10) == 0
    assert time.monotonic() - started < 5
    assert (ws / ".agents" / "queue" / "new" / f"{mid}.json").exists()  # given back, attempt not counted
    cli.ok("run")
    assert len(turns_for(ws, "alice", "hi")) == 1


def test_tool_option_forces_the_first_tool_of_that_turn_only(cli, llm, ws):
    from tests.fakellm import call

    agent(cli, "alice")
    llm.script("alice", [call("core_memory_append", label="nope", content="x"), text("done")])
    cli.ok("send", "alice", "note this", "--tool", "core_memory_append")
    first, second = llm.requests_for("alice")
    assert first["tool_choice"] == {"type": "function", "function": {"name": "core_memory_append"}}
    assert second["tool_choice"] == "auto"
    assert second["messages"][-1]["content"].startswith("Error:")  # unknown label goes back to the model
    cli.ok("send", "alice", "again")
    assert llm.requests_for("alice")[2]["tool_choice"] == "auto"
    res = cli("send", "alice", "x", "--tool", "rm_rf")
    assert res.code == 2 and "unknown tool" in res.err


def test_a_disk_failing_at_the_turn_commit_stops_the_scheduler_and_loses_nothing(cli, llm, ws):
    agent(cli, "alice")
    mid = cli.ok("send", "alice", "precious", "--no-wait").out.strip()
    # atomic writes of `agents run`: 1 = scheduler.pid, 2 = the turn's commit record
    res = cli("run", env={"LETTA_CLI_FAIL_AT": "rename:EIO@2"})
    assert res.code == 8 and "Traceback" not in res.err and len(res.err.splitlines()) == 1, res.err
    assert not (ws / ".agents" / "turns" / f"{mid}.json").exists()
    assert turns_for(ws, "alice", "precious") == []  # it stopped instead of carrying on
    cli.ok("run")
    assert len(turns_for(ws, "alice", "precious")) == 1
