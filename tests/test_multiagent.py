"""Issue 5: agents talking to agents with Letta's three tools (Letta's own acceptance scenarios, plus ours).

The "model" is the scripted fake server (tests/fakellm.py), so the assertions are on what each agent's model
was actually sent and on the files left in the workspace. What the shell sees (output, exit codes, `run
--watch`, `list`) runs the real CLI in a subprocess; the turn logic between agents runs `ask`, the library
calls `agents send` makes (publish, then serve until answered), in-process: no Python start-up per command.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from letta_cli.core.models import TurnRecord
from tests import turnkit
from tests.conftest import CLI
from tests.fakellm import FakeLLM, Reply, agent_of, call, calls, error, last_user_text, text, tool_results

# Letta's prefixes, byte for byte (letta/functions/function_sets/multi_agent.py).
REQUEST = "[Incoming message from agent with ID '{}' - your response will be delivered to the sender] "
ASYNC = (
    "[Incoming message from agent with ID '{}' - this is a one-way notification; if you need to respond, "
    "use an agent-to-agent messaging tool if available] "
)
SENT = "Successfully sent message"
WAIT = "send_message_to_agent_and_wait_for_reply"
ASYNC_TOOL = "send_message_to_agent_async"
BROADCAST = "send_message_to_agents_matching_all_tags"

TAG_TABLE = {"a1": ["primary", "b1"], "a2": ["primary", "b2"], "a3": ["primary", "b1", "b2"]}
TAG_CASES = [(["primary", "b1"], {"a1", "a3"}), (["primary"], {"a1", "a2", "a3"}), (["primary", "nonexistent"], set())]

SUB = 30  # seconds: a subprocess that takes longer than this is hung, not slow


# ------------------------------------------------------------------------------------------------ helpers


def agent(ws: Path, name: str, tags: list[str] | tuple = (), extra: str = "") -> Path:
    """A hand-written agent file; `extra` is TOML appended after the top-level keys (tables go there)."""
    lines = ["version = 1", f'name = "{name}"']
    if tags:
        lines.append(f"tags = {json.dumps(list(tags))}")
    path = ws / "agents.d" / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def set_limits(ws: Path, **limits) -> None:
    """Change workspace limits in agents.toml (keeping the fixture's fast retry settings)."""
    path = ws / "agents.toml"
    data = tomllib.loads(path.read_text())
    data.setdefault("limits", {}).update(limits)
    path.write_text(tomli_w.dumps(data))


def history(ws: Path, name: str) -> list[dict]:
    path = ws / ".agents" / "history" / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def turns(llm: FakeLLM, name: str) -> list[dict]:
    """The first model request of each turn of `name` (a request with no tool results yet)."""
    return [r for r in llm.requests_for(name) if not tool_results(r)]


def index(llm: FakeLLM, body: dict) -> int:
    return next(i for i, r in enumerate(llm.requests) if r is body)


def send(cli: CLI, name: str, message: str, *extra: str, timeout: float = SUB):
    return cli("send", name, message, *extra, timeout=timeout)


@pytest.fixture
def lib(cli: CLI, llm: FakeLLM, ws: Path) -> Path:
    """A workspace for in-process turns: the endpoint goes into agents.toml (the CLI gets it from the env)."""
    path = ws / "agents.toml"
    path.write_text(tomli_w.dumps({**tomllib.loads(path.read_text()), "base_url": llm.url}))
    return ws


def ask(ws: Path, name: str, message: str) -> TurnRecord:
    """`agents send NAME MESSAGE`, in-process."""
    return turnkit.send(ws, name, message, timeout=SUB)


def printed(record: TurnRecord) -> str:
    """What `agents send` prints of a record."""
    return "\n".join(record.reply)


@contextlib.contextmanager
def daemon(cli: CLI, llm: FakeLLM, probe: str):
    """`agents run --watch` in the background, known to be serving; stopped with SIGTERM on exit.

    The probe message is queued before the daemon starts, so once its model call arrives the daemon holds
    the scheduler lock (no sleeping, no racing the daemon's start-up). Yields a dict that gets the exit
    code and stderr."""
    cli.ok("send", probe, "probe", "--no-wait")
    before = len(llm.requests)
    proc = cli.popen("run", "--watch", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    result: dict = {}
    try:
        llm.wait_for_requests(before + 1, timeout=SUB)
        yield result
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=SUB)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        result.update(code=proc.returncode, err=err.decode(errors="replace"))


# ------------------------------------------------------------------------------------ wait for reply


def test_wait_for_reply_carries_the_secret_word_both_ways(cli, llm, ws):
    agent(ws, "alice")
    agent(ws, "bob")
    llm.script("alice", [call(WAIT, message="What is the secret word?", other_agent_id="bob")])
    llm.on("alice", lambda body: text("Bob says: " + tool_results(body)[0]))
    llm.script("bob", [text("The secret word is PAPAYA-42.")])

    res = send(cli, "alice", "Ask bob for the secret word.", "--json")
    assert res.code == 0, res.err
    assert "PAPAYA-42" in res.json()["reply"]

    # bob's model saw alice's request with Letta's request prefix, exactly
    [bob_req] = llm.requests_for("bob")
    assert last_user_text(bob_req) == REQUEST.format("alice") + "What is the secret word?"

    # the secret is in bob's history, as his answer to alice's (prefixed) message
    bob_hist = history(ws, "bob")
    assert [e["role"] for e in bob_hist] == ["user", "assistant"]
    assert bob_hist[0]["content"] == REQUEST.format("alice") + "What is the secret word?"
    assert bob_hist[0]["sender"] == "alice"
    assert bob_hist[1]["content"] == "The secret word is PAPAYA-42."

    # alice's second model call carried the reply as the tool's result: Letta's shape, as JSON text
    first, second = llm.requests_for("alice")
    tool_msgs = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(tool_msgs) == 1
    assert json.loads(tool_msgs[0]["content"]) == {"agent_id": "bob", "response": ["The secret word is PAPAYA-42."]}
    assert tool_msgs[0]["tool_call_id"] == second["messages"][-2]["tool_calls"][0]["id"]
    # ... and alice's history keeps it too
    assert any(e["role"] == "tool" and "PAPAYA-42" in e["content"] for e in history(ws, "alice"))
    # the tools were offered under Letta's names, with Letta's parameters
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in first["tools"]}
    for name in (WAIT, ASYNC_TOOL):
        assert set(tools[name]["properties"]) == {"message", "other_agent_id"}
        assert sorted(tools[name]["required"]) == ["message", "other_agent_id"]
    assert set(tools[BROADCAST]["properties"]) == {"message", "tags"}
    assert tools[BROADCAST]["properties"]["tags"]["type"] == "array"


def test_wait_for_reply_returns_every_assistant_message_or_no_response(lib, llm, ws):
    """The reply is every assistant message the receiver produced in that one turn; none: ['<no response>']."""
    for name in ("alice", "bob", "carol"):
        agent(ws, name)
    llm.script(
        "alice",
        [
            calls(
                (WAIT, {"message": "two things?", "other_agent_id": "bob"}),
                (WAIT, {"message": "and you?", "other_agent_id": "carol"}),
            )
        ],
    )
    llm.on("alice", lambda body: text(json.dumps([json.loads(r) for r in tool_results(body)])))
    llm.script("bob", [call("send_message", message="first thing"), text("unused")])
    llm.script("carol", [text(""), text("")])  # empty, and empty again when asked without tools

    record = ask(ws, "alice", "go")
    assert record.status == "ok", record.error
    assert json.loads(printed(record)) == [
        {"agent_id": "bob", "response": ["first thing"]},
        {"agent_id": "carol", "response": ["<no response>"]},
    ]
    # send_message ends bob's turn (a terminal tool by default): bob's model is called once
    assert len(llm.requests_for("bob")) == 1


def test_waits_for_cycle_is_refused_not_hung(lib, llm, ws):
    agent(ws, "alice")
    agent(ws, "bob")
    llm.script("alice", [call(WAIT, message="question for bob", other_agent_id="bob")])
    llm.on("alice", lambda body: text("alice got: " + tool_results(body)[0]))
    llm.script("bob", [call(WAIT, message="counter-question", other_agent_id="alice")])
    llm.on("bob", lambda body: text("bob saw: " + tool_results(body)[0]))

    started = time.monotonic()
    record = ask(ws, "alice", "start")
    assert record.status == "ok", record.error
    assert time.monotonic() - started < 20

    bob_result = tool_results(llm.requests_for("bob")[1])[0]
    assert bob_result.startswith("Error:")
    assert "deadlock" in bob_result
    # alice's only turn is the one that is waiting: the refused request never reached her model
    assert len(turns(llm, "alice")) == 1
    # and alice still got bob's (apologetic) reply
    reply = json.loads(tool_results(llm.requests_for("alice")[1])[0])
    assert reply["agent_id"] == "bob" and "deadlock" in reply["response"][0]


def test_three_agent_waits_for_cycle_is_refused(lib, llm, ws):
    set_limits(ws, wait_timeout=5)  # a lost request shows up as a timeout, not as a hung test
    for name in ("a", "b", "c"):
        agent(ws, name)
    nxt = {"a": "b", "b": "c", "c": "a"}
    for name in nxt:
        llm.on(
            name,
            lambda body, name=name: (
                text(f"{name}: " + tool_results(body)[0])
                if tool_results(body)
                else call(WAIT, message=f"from {name}", other_agent_id=nxt[name])
            ),
        )
    record = ask(ws, "a", "start")
    assert record.status == "ok", record.error
    c_result = tool_results(llm.requests_for("c")[1])[0]
    assert c_result.startswith("Error:") and "deadlock" in c_result
    assert len(turns(llm, "a")) == 1
    assert "deadlock" in printed(record)  # the refusal travelled back up c -> b -> a


def test_wait_and_broadcast_timeouts_are_tool_errors(lib, llm, ws):
    set_limits(ws, model_timeout=10)
    agent(ws, "alice", extra="[limits]\nwait_timeout = 1\n")
    agent(ws, "bob")
    agent(ws, "fast", ["crew"])
    agent(ws, "slow", ["crew"])
    llm.script("bob", [text("x", delay=3)])
    llm.script("slow", [text("x", delay=3)])
    llm.on("fast", lambda body: text("here"))
    llm.script(
        "alice",
        [
            calls(
                (WAIT, {"message": "are you there?", "other_agent_id": "bob"}),
                (BROADCAST, {"message": "roll call", "tags": ["crew"]}),
            )
        ],
    )
    llm.on("alice", lambda body: text("done"))

    started = time.monotonic()
    record = ask(ws, "alice", "ask around")
    assert record.status == "ok", record.error
    assert time.monotonic() - started < 20
    wait_result, broadcast_result = tool_results(llm.requests_for("alice")[1])
    assert wait_result.startswith("Error:") and "bob" in wait_result and "1s" in wait_result
    # a broadcast's timeout is per agent: the ones that answered are kept
    results = {r["agent_id"]: r for r in json.loads(broadcast_result)}
    assert results["fast"] == {"agent_id": "fast", "response": ["here"]}
    assert set(results["slow"]) == {"agent_id", "error"} and "slow" in results["slow"]["error"]
    # alice's turn ended although bob and slow had not answered yet
    assert len(llm.requests_for("alice")) == 2


def test_bad_targets_are_tool_errors(lib, llm, ws):
    """Unknown ids (with close matches), waiting on yourself, a target whose model fails: errors, not hangs."""
    for name in ("alice", "bob", "robert", "broken"):
        agent(ws, name)
    llm.on("broken", lambda body: error(400))
    llm.script(
        "alice",
        [
            calls(
                (WAIT, {"message": "hi", "other_agent_id": "bobb"}),
                (ASYNC_TOOL, {"message": "hi", "other_agent_id": "rober"}),
                (ASYNC_TOOL, {"message": "hi", "other_agent_id": "zzzzzz"}),
                (WAIT, {"message": "hello me", "other_agent_id": "alice"}),
                (WAIT, {"message": "hi", "other_agent_id": "broken"}),
            )
        ],
    )
    llm.on("alice", lambda body: text("done"))
    record = ask(ws, "alice", "go")
    assert record.status == "ok", record.error
    wait_err, async_err, far_err, self_err, broken_err = tool_results(llm.requests_for("alice")[1])
    assert wait_err.startswith("Error:") and "'bobb'" in wait_err and "bob" in wait_err.replace("'bobb'", "")
    assert async_err.startswith("Error:") and "robert" in async_err
    # nothing close: the known agents are listed instead
    assert far_err.startswith("Error:") and "alice" in far_err and "bob" in far_err
    assert self_err.startswith("Error:") and "deadlock" in self_err
    assert broken_err.startswith("Error:") and "broken" in broken_err and "400" in broken_err
    assert llm.requests_for("bob") == [] and llm.requests_for("robert") == []
    assert len(turns(llm, "alice")) == 1


# ------------------------------------------------------------------------------------------ broadcast


def worker_fleet(ws: Path, llm: FakeLLM) -> None:
    agent(ws, "manager", ["worker", "user-456"])  # has the tags itself: must still be left out
    for name in ("w1", "w2"):
        agent(ws, name, ["worker", "user-456"])
    for name in ("w3", "w4"):
        agent(ws, name, ["worker", "user-123"])
    agent(ws, "broken", ["worker", "user-456"])
    for name in ("w1", "w2", "w3", "w4"):
        llm.on(name, lambda body, name=name: text(f"{name} reporting"))
    llm.on("broken", lambda body: error(400))


def test_broadcast_reaches_exactly_the_agents_with_all_tags(cli, llm, ws):
    worker_fleet(ws, llm)
    llm.script("manager", [call(BROADCAST, message="Status report, please.", tags=["worker", "user-456"])])
    llm.on("manager", lambda body: text(tool_results(body)[0]))

    res = send(cli, "manager", "collect the reports", "--json")
    assert res.code == 0, res.err

    # who was asked: the user-456 workers, never the user-123 ones, never the sender itself
    assert {agent_of(r) for r in llm.requests} == {"manager", "w1", "w2", "broken"}
    assert len(llm.requests_for("manager")) == 2
    for name in ("w1", "w2"):
        [req] = llm.requests_for(name)
        assert last_user_text(req) == REQUEST.format("manager") + "Status report, please."

    results = json.loads(tool_results(llm.requests_for("manager")[1])[0])
    assert isinstance(results, list)
    by_id = {r["agent_id"]: r for r in results}
    assert set(by_id) == {"w1", "w2", "broken"}
    assert by_id["w1"] == {"agent_id": "w1", "response": ["w1 reporting"]}
    assert by_id["w2"] == {"agent_id": "w2", "response": ["w2 reporting"]}
    # the failing worker (HTTP 400: permanent) is one error entry, not a failed broadcast
    assert set(by_id["broken"]) == {"agent_id", "error"}
    assert "400" in by_id["broken"]["error"]
    # it was not retried (a 400 is permanent) and its message is dead-lettered
    assert len(llm.requests_for("broken")) == 1
    assert list((ws / ".agents" / "queue" / "dead").glob("*.json"))


def test_broadcast_tool_follows_the_letta_tag_table(lib, llm, ws):
    for name, tags in TAG_TABLE.items():
        agent(ws, name, tags)
        llm.on(name, lambda body, name=name: text(f"{name} here"))
    agent(ws, "boss")
    queries = [(BROADCAST, {"message": f"q{i}", "tags": tags}) for i, (tags, _) in enumerate(TAG_CASES)]
    llm.script("boss", [calls(*queries, (BROADCAST, {"message": "everyone?", "tags": []}))])
    llm.on("boss", lambda body: text("ok"))
    record = ask(ws, "boss", "ask around")
    assert record.status == "ok", record.error
    *results, empty = tool_results(llm.requests_for("boss")[1])
    # an empty tag list matches nobody: a tool error, never "everyone"
    assert empty.startswith("Error:") and "empty" in empty
    results = [json.loads(r) for r in results]
    for (tags, expected), got in zip(TAG_CASES, results, strict=False):
        assert {r["agent_id"] for r in got} == expected, tags
        assert all(r["response"] == [f"{r['agent_id']} here"] for r in got)
    # each agent's model was asked once per matching query
    assert {name: len(llm.requests_for(name)) for name in TAG_TABLE} == {"a1": 2, "a2": 1, "a3": 2}


def test_list_by_tags_follows_the_letta_tag_table(cli, ws):
    for name, t in TAG_TABLE.items():
        agent(ws, name, t)
    for tags, expected in TAG_CASES:
        repeated = [a for t in tags for a in ("--tag", t)]
        assert {a["name"] for a in cli.ok("list", *repeated, "--json").json()} == expected, tags
    # a,b is the same as --tag a --tag b
    assert {a["name"] for a in cli.ok("list", "--tag", "primary,b1", "--json").json()} == {"a1", "a3"}


def test_broadcast_skips_an_agent_that_waits_on_the_sender(lib, llm, ws):
    """w1 waits on the manager; the manager's broadcast to [worker] must not wait on w1 (deadlock)."""
    agent(ws, "manager")
    agent(ws, "w1", ["worker"])
    agent(ws, "w2", ["worker"])
    llm.script("w1", [call(WAIT, message="what should I do?", other_agent_id="manager")])
    llm.on("w1", lambda body: text(tool_results(body)[0]))
    llm.script("manager", [call(BROADCAST, message="team, status?", tags=["worker"])])
    llm.on("manager", lambda body: text(tool_results(body)[0]))
    llm.on("w2", lambda body: text("w2 fine"))

    record = ask(ws, "w1", "ask the manager")
    assert record.status == "ok", record.error
    results = {r["agent_id"]: r for r in json.loads(tool_results(llm.requests_for("manager")[1])[0])}
    assert results["w2"] == {"agent_id": "w2", "response": ["w2 fine"]}
    assert "deadlock" in results["w1"]["error"]
    assert len(turns(llm, "w1")) == 1


def test_broadcast_to_fifty_agents_runs_them_concurrently(lib, llm, ws):
    agent(ws, "manager")
    for i in range(50):
        agent(ws, f"w{i:02d}", ["swarm"])
    llm.default = lambda body: text(f"{agent_of(body)} ok", delay=0.2)
    arrivals: list[float] = []

    def manager(body: dict) -> Reply:
        arrivals.append(time.monotonic())
        if tool_results(body):
            return text(str(len(json.loads(tool_results(body)[0]))))
        return call(BROADCAST, message="report", tags=["swarm"])

    llm.on("manager", manager)
    started = time.monotonic()
    record = ask(ws, "manager", "go")
    elapsed = time.monotonic() - started
    assert record.status == "ok", record.error
    assert printed(record).strip() == "50"
    results = json.loads(tool_results(llm.requests_for("manager")[1])[0])
    assert sorted(r["agent_id"] for r in results) == [f"w{i:02d}" for i in range(50)]
    assert all(r["response"] == [f"{r['agent_id']} ok"] for r in results)
    # one after the other, the broadcast alone would take >= 50 x 200 ms = 10 s
    span = arrivals[1] - arrivals[0]
    assert span < 5, f"the broadcast took {span:.1f}s: its turns did not run concurrently"
    assert elapsed < 10, f"the whole command took {elapsed:.1f}s"


def test_broadcast_concurrency_limit_is_respected(lib, llm, ws):
    """broadcast_concurrency bounds how many of a broadcast's turns run at once."""
    set_limits(ws, broadcast_concurrency=2)
    agent(ws, "manager")
    for i in range(6):
        agent(ws, f"w{i}", ["crew"])
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def worker(body: dict) -> Reply:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.4)  # the model "thinking": keeps the turn open so overlaps can be counted
        with lock:
            state["now"] -= 1
        return text("ok")

    for i in range(6):
        llm.on(f"w{i}", worker)
    llm.script("manager", [call(BROADCAST, message="go", tags=["crew"])])
    llm.on("manager", lambda body: text("done"))
    record = ask(ws, "manager", "go")
    assert record.status == "ok", record.error
    assert state["max"] == 2


# ----------------------------------------------------------------------------------------------- async


def exchange_handlers(llm: FakeLLM) -> None:
    def alice(body: dict) -> Reply:
        if tool_results(body):
            return text("alice: told bob")
        said = last_user_text(body)
        if said == "final":
            return text("alice: bye")
        if said.startswith(ASYNC.format("bob")):
            return text("alice: thanks bob")
        return call(ASYNC_TOOL, message="hello bob", other_agent_id="bob")

    def bob(body: dict) -> Reply:
        if tool_results(body):
            return text("bob: answered alice")
        if last_user_text(body).startswith("[Incoming"):
            return call(ASYNC_TOOL, message="hello alice, got your note", other_agent_id="alice")
        return text("bob: probe ok")

    llm.on("alice", alice)
    llm.on("bob", bob)


@pytest.mark.parametrize("use_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_async_exchange(cli, llm, ws, use_daemon):
    """Async messages work the same whether `agents run --watch` serves or the sending command does."""
    agent(ws, "alice")
    agent(ws, "bob")
    exchange_handlers(llm)
    stopped: dict
    with daemon(cli, llm, "bob") if use_daemon else contextlib.nullcontext({}) as stopped:
        before = len(llm.requests)
        res = send(cli, "alice", "say hello to bob")
        assert res.code == 0, res.err
        assert res.out.strip() == "alice: told bob"
        if not use_daemon:
            # no daemon: the `send` that started the chain finished it (every turn committed) before exiting
            assert [len(llm.requests_for(n)) for n in ("alice", "bob")] == [3, 2]
            assert history(ws, "alice")[-1]["content"] == "alice: thanks bob"
            assert not [p for d in ("new", "cur") for p in (ws / ".agents" / "queue" / d).glob("*.json")]
        # alice 2 calls, bob 2 calls, alice 1 call for bob's note: all of them, served by whoever serves
        llm.wait_for_requests(before + 5, timeout=SUB)
        # a second message to alice runs only after her previous turn is committed (one turn per agent, FIFO)
        assert send(cli, "alice", "final").out.strip() == "alice: bye"
    if use_daemon:
        assert stopped["code"] == 0, stopped["err"]
        assert "Traceback" not in stopped["err"]

    reqs = llm.requests[before:]
    alice_reqs = [r for r in reqs if agent_of(r) == "alice"]
    bob_reqs = [r for r in reqs if agent_of(r) == "bob"]
    assert len(alice_reqs) == 4 and len(bob_reqs) == 2
    # the async tool returns at once, with Letta's exact text
    assert tool_results(alice_reqs[1]) == [SENT]
    assert tool_results(bob_reqs[1]) == [SENT]
    # bob's turn starts only after alice's turn is committed: after her last model call of that turn
    assert index(llm, bob_reqs[0]) > index(llm, alice_reqs[1])
    assert index(llm, alice_reqs[2]) > index(llm, bob_reqs[1])
    assert last_user_text(bob_reqs[0]) == ASYNC.format("alice") + "hello bob"
    assert last_user_text(alice_reqs[2]) == ASYNC.format("bob") + "hello alice, got your note"

    # both histories show the exchange
    alice_hist, bob_hist = history(ws, "alice"), history(ws, "bob")
    assert any(e["role"] == "tool" and e["content"] == SENT for e in alice_hist)
    assert any(
        e["role"] == "user" and e["content"] == ASYNC.format("bob") + "hello alice, got your note" for e in alice_hist
    )
    assert any(e["role"] == "assistant" and e["content"] == "alice: thanks bob" for e in alice_hist)
    assert any(
        e["role"] == "user" and e["content"] == ASYNC.format("alice") + "hello bob" and e.get("sender") == "alice"
        for e in bob_hist
    )
    assert any(e["role"] == "tool" and e["content"] == SENT for e in bob_hist)
    # nothing left in the queue
    assert not list((ws / ".agents" / "queue" / "new").glob("*.json"))


def ping_pong(llm: FakeLLM, a: str = "ping", b: str = "pong") -> None:
    """Two agents told to message each other forever: they always send, then say they did."""
    for me, other in ((a, b), (b, a)):
        llm.on(
            me,
            lambda body, other=other: (
                text("sent (or not): " + tool_results(body)[0])
                if tool_results(body)
                else call(ASYNC_TOOL, message="your turn!", other_agent_id=other)
            ),
        )


def test_ping_pong_stops_at_the_hop_limit(lib, llm, ws):
    set_limits(ws, hop_limit=4)
    agent(ws, "ping")
    agent(ws, "pong")
    ping_pong(llm)
    record = ask(ws, "ping", "start the game")
    assert record.status == "ok", record.error
    # user->ping (hop 0), ping->pong 1, pong->ping 2, ping->pong 3, pong->ping 4: the 5th send is refused
    assert len(turns(llm, "ping")) == 3
    assert len(turns(llm, "pong")) == 2
    results = [tool_results(r)[0] for r in llm.requests if tool_results(r)]
    assert results[:4] == [SENT] * 4
    assert results[4].startswith("Error:") and "hop limit" in results[4]
    assert agent_of([r for r in llm.requests if tool_results(r)][4]) == "ping"
    assert not list((ws / ".agents" / "queue" / "new").glob("*.json"))


def test_ping_pong_stops_at_the_chain_turn_budget(lib, llm, ws):
    set_limits(ws, chain_turn_budget=2)
    agent(ws, "ping")
    agent(ws, "pong")
    ping_pong(llm)
    record = ask(ws, "ping", "start the game")
    assert record.status == "ok", record.error
    # the user's message to ping starts the chain (not budgeted); pong and ping then use the budget of two,
    # and the next message is stopped without a model call
    assert len(turns(llm, "ping")) == 2 and len(turns(llm, "pong")) == 1
    stopped = [json.loads(p.read_text()) for p in (ws / ".agents" / "turns").glob("*.json")]
    assert sorted(r["status"] for r in stopped) == ["ok", "ok", "ok", "stopped"]
    assert any("turn budget" in (r["error"] or "") for r in stopped)


def test_chain_token_budget_stops_the_chain(cli, llm, ws):
    set_limits(ws, chain_token_budget=1)
    agent(ws, "ping")
    agent(ws, "pong")
    ping_pong(llm)
    res = send(cli, "ping", "start the game", "--json")
    assert res.code == 7
    assert res.json()["status"] == "stopped" and "token budget" in res.json()["error"]
    assert len(llm.requests) == 1  # the first model call used up the budget: nothing more, nothing sent
    assert llm.requests_for("pong") == []


# ------------------------------------------------------------------------------------------ tool rules


def test_first_tool_rule_forces_the_first_call_only(lib, llm, ws):
    agent(ws, "lead", extra=f'[tool_rules]\nfirst = "{BROADCAST}"\n')
    agent(ws, "crew1", ["crew"])
    llm.script("lead", [call(BROADCAST, message="ready?", tags=["crew"])])
    llm.on("lead", lambda body: text("all ready"))
    record = ask(ws, "lead", "check the crew")
    assert record.status == "ok", record.error
    first, second = llm.requests_for("lead")
    assert first["tool_choice"] == {"type": "function", "function": {"name": BROADCAST}}
    assert second["tool_choice"] == "auto"
    # the rule is the agent's own: others are not forced
    assert llm.requests_for("crew1")[0]["tool_choice"] == "auto"


def test_terminal_tool_rule_ends_the_turn(lib, llm, ws):
    agent(ws, "scribe", extra='[tool_rules]\nterminal = ["core_memory_append"]\n[memory.blocks.notes]\nvalue = ""\n')
    llm.script(
        "scribe",
        [
            call("core_memory_append", label="nope", content="x"),  # fails: a failed terminal tool does not end it
            call("core_memory_append", label="notes", content="remember the milk"),
            text("never asked"),
        ],
    )
    record = ask(ws, "scribe", "note this")
    assert record.status == "ok", record.error
    assert len(llm.requests_for("scribe")) == 2
    assert record.status == "ok"
    block = json.loads((ws / ".agents" / "blocks" / "private" / "scribe" / "notes.json").read_text())
    assert "remember the milk" in block["value"]


def test_a_starting_scheduler_keeps_a_producers_temp_file(cli, llm, ws):
    """Producers take no lock: a scheduler starting up (recover) must not delete a temp file that a live
    producer is about to link into new/ (that made `agents send --no-wait` fail with an internal error when
    `agents run --watch` started at the same moment, and lost the message)."""
    import os

    agent(ws, "bob")
    tmp = ws / ".agents" / "queue" / "tmp"
    tmp.mkdir(parents=True)
    in_flight = tmp / f"01a212eb-2aa1-7001-8e16-b8897122b09d.{os.getpid()}-0123456789ab"
    in_flight.write_text("{}")  # written a moment ago by a live process (this one), not yet linked
    cli.ok("run", timeout=SUB)
    assert in_flight.exists()
