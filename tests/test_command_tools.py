"""Issue 19: command tools. Each test runs a real turn in-process (tests/turnkit.py: the scripted model server
through the real openai SDK) whose model calls a command tool that really runs: a small Python script in the
workspace, started in its own process group. Checked: what the command got (stdin, argv, environment, cwd),
what the model read back, the trace, and that no process is left behind."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tomli_w

from letta_cli.core.models import Message
from letta_cli.store.agents import AgentStore
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace
from tests.fakellm import call, text, tool_results
from tests.turnkit import StubRuntime, context, run, small_workspace, turn

PY = sys.executable

ECHO = """
import json, os, sys
args = json.load(sys.stdin)
print(json.dumps({"args": args, "argv": sys.argv[1:], "cwd": os.getcwd(),
                  "env": {k: os.environ[k] for k in sorted(os.environ)}}))
"""
COUNT = """
import json, sys
args = json.load(sys.stdin)
with open("count.txt", "a") as fh:
    fh.write(json.dumps(args) + "\\n")
print("counted", args)
"""
HANG = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open("pids.txt", "w") as fh:
    fh.write(f"{os.getpgid(0)} {os.getpid()} {child.pid}")
time.sleep(120)
"""


def script(ws: Workspace, name: str, body: str) -> str:
    (ws.root / name).write_text(textwrap.dedent(body))
    return name


def workspace_tools(root: Path, tools: dict, **config) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "agents.toml").write_text(tomli_w.dumps({"version": 1, **config, "tools": tools}))


def with_tools(root: Path, tools: dict, agent_tools: list[str] | None, **config) -> Workspace:
    """small_workspace with command tools in agents.toml and alice's `tools` list set."""
    workspace_tools(root, tools, **config)
    ws = small_workspace(root)
    store = AgentStore(ws)
    store.save(store.get("alice").model_copy(update={"tools": agent_tools}), overwrite=True)
    return Workspace(root)  # a fresh config


def tool_events(ws: Workspace) -> list[dict]:
    return [e for e in Trace(ws.trace_path).events() if e["event"] == "tool_call"]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a container's init may not reap at once)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "ws"


# ------------------------------------------------------------------------------------------- running


def test_a_command_tool_gets_its_arguments_as_json_and_its_stdout_is_the_result(root, llm):
    ws = with_tools(
        root,
        {"roll_dice": {"description": "Roll a die.", "command": [PY, "echo.py"], "args": {"sides": "integer"}}},
        ["send_message", "roll_dice"],
    )
    script(ws, "echo.py", ECHO)
    llm.script("alice", [call("roll_dice", sides=6, request_heartbeat=True), text("rolled")])
    record = turn(ws, llm, "alice", "roll one")
    assert record.status == "ok" and record.reply == ["rolled"]
    got = json.loads(tool_results(llm.requests[1])[0])
    assert got["args"] == {"sides": 6}  # as sent (6, not 6.0), request_heartbeat dropped
    assert got["argv"] == [] and got["cwd"] == str(ws.root)
    assert got["env"]["AGENTS_AGENT"] == "alice" and got["env"]["AGENTS_TOOL"] == "roll_dice"
    # offered as declared, after the agent's built-in tools
    offered = [t["function"] for t in llm.requests[0]["tools"]]
    assert [f["name"] for f in offered] == ["send_message", "roll_dice"]
    assert offered[1]["parameters"] == {
        "type": "object",
        "properties": {"sides": {"type": "integer"}},
        "required": ["sides"],
    }
    assert offered[1]["description"] == "Roll a die."
    [event] = tool_events(ws)
    assert event["tool"] == "roll_dice" and json.loads(event["arguments"])["sides"] == 6
    assert event["exit_code"] == 0 and event["replayed"] is False and event["error"] is False
    assert event["command_ms"] >= 0 and '"sides": 6' in event["result"]


def test_a_command_tool_is_offered_only_to_agents_that_list_it(root, llm):
    ws = with_tools(root, {"roll_dice": {"command": [PY, "-c", "print(4)"]}}, None)  # alice: every built-in
    AgentStore(ws).save(AgentStore(ws).get("bob").model_copy(update={"tools": ["roll_dice"]}), overwrite=True)
    turn(ws, llm, "alice", "hi")
    turn(ws, llm, "bob", "hi")
    alice, bob = ([t["function"]["name"] for t in r["tools"]] for r in llm.requests)
    assert "roll_dice" not in alice and len(alice) == 9
    assert bob == ["roll_dice"]


def test_an_agent_file_may_declare_its_own_tool_which_wins_over_the_workspaces(root, llm):
    ws = with_tools(root, {"which": {"command": [PY, "-c", "print('workspace')"]}}, ["which"])
    store = AgentStore(ws)
    data = store.get("alice").model_dump()
    data["command_tools"] = {"which": {"command": [PY, "-c", "print('agent file')"]}}
    store.save(type(store.get("alice")).model_validate(data), overwrite=True)
    llm.script("alice", [call("which"), text("ok")])
    llm.script("bob", [call("which"), text("ok")])
    turn(ws, llm, "alice", "which?")
    assert tool_results(llm.requests[1]) == ["agent file"]


def test_flags_pass_the_arguments_as_argv_too(root, llm):
    ws = with_tools(
        root,
        {
            "echo": {
                "command": [PY, "echo.py", "--fixed"],
                "args": {"n": "integer", "who": "string?", "loud": "boolean?", "tags": "string[]?"},
                "flags": True,
            }
        },
        ["echo"],
    )
    script(ws, "echo.py", ECHO)
    llm.script("alice", [call("echo", n=3, who="-x; rm -rf /", loud=True, tags=["a", "b"]), text("ok")])
    turn(ws, llm, "alice", "go")
    got = json.loads(tool_results(llm.requests[1])[0])
    assert got["argv"] == ["--fixed", "--n", "3", "--who", "-x; rm -rf /", "--loud", "--tags", "a", "--tags", "b"]


def test_a_python_script_runs_with_agents_own_python(root, llm):
    ws = with_tools(root, {"py": {"python": "tools.d/where.py"}}, ["py"])
    (ws.root / "tools.d").mkdir()
    script(ws, "tools.d/where.py", "import sys; print(sys.executable)")
    llm.script("alice", [call("py"), text("ok")])
    turn(ws, llm, "alice", "go")
    assert tool_results(llm.requests[1]) == [sys.executable]


# --------------------------------------------------------------------------------------------- errors


def test_schema_validation_errors_reach_the_model_and_nothing_runs(root, llm):
    schema = {
        "type": "object",
        "properties": {"sides": {"type": "integer", "minimum": 2, "maximum": 100}, "color": {"enum": ["red"]}},
        "required": ["sides"],
    }
    ws = with_tools(root, {"roll_dice": {"command": [PY, "count.py"], "parameters": schema}}, ["roll_dice"])
    script(ws, "count.py", COUNT)
    llm.script(
        "alice",
        [
            call("roll_dice", sides="6"),
            call("roll_dice", sides=1000),
            call("roll_dice", sides=6, color="blue"),
            call("roll_dice", sides=6, colour="red"),
            call("roll_dice", "{not json"),
            call("roll_dice"),
            text("gave up"),
        ],
    )
    record = turn(ws, llm, "alice", "roll")
    assert record.reply == ["gave up"]
    seen = [tool_results(r)[-1] for r in llm.requests[1:]]
    assert seen[0] == "Error: roll_dice: argument 'sides' must be an integer, got string"
    assert seen[1] == "Error: roll_dice: argument 'sides': 1000 is greater than the maximum of 100"
    assert seen[2] == "Error: roll_dice: argument 'color': 'blue' is not one of ['red']"
    assert seen[3].startswith("Error: roll_dice: unexpected argument 'colour'")
    assert seen[4].startswith("Error: roll_dice: the arguments are not valid JSON")
    assert seen[5] == "Error: roll_dice: missing argument sides"
    assert not (ws.root / "count.txt").exists()
    assert all(e["error"] for e in tool_events(ws))


def test_a_failing_command_is_a_tool_error_with_its_stderr(root, llm):
    fail = "import sys; sys.stderr.write('no such order\\n'); sys.exit(3)"
    ws = with_tools(root, {"f": {"command": [PY, "-c", fail]}, "g": {"command": ["./missing-tool"]}}, ["f", "g"])
    llm.script("alice", [call("f"), call("g"), text("ok")])
    record = turn(ws, llm, "alice", "go")
    assert record.status == "ok"
    assert tool_results(llm.requests[1]) == ["Error: f: exited with code 3: no such order"]
    assert tool_results(llm.requests[2])[-1] == "Error: g: cannot run './missing-tool': No such file or directory"
    assert [e["exit_code"] for e in tool_events(ws)] == [3, None]


def test_a_hanging_tool_is_killed_with_its_whole_group_at_the_timeout(root, llm):
    ws = with_tools(root, {"hang": {"command": [PY, "hang.py"], "timeout": 1}}, ["hang"])
    script(ws, "hang.py", HANG)
    llm.script("alice", [call("hang"), text("ok")])
    started = time.monotonic()
    record = turn(ws, llm, "alice", "go")
    assert time.monotonic() - started < 20
    assert record.status == "ok"
    assert tool_results(llm.requests[1]) == ["Error: hang: timed out after 1 s (killed)"]
    pgid, leader, child = map(int, (ws.root / "pids.txt").read_text().split())
    assert pgid == leader  # a group of its own
    assert not alive(leader) and not alive(child), "a process of the tool outlived its timeout"
    assert not group_alive(pgid)
    [event] = tool_events(ws)
    assert event["timed_out"] is True and event["exit_code"] is None


def test_a_stopped_turn_kills_the_running_tool(root, llm):
    ws = with_tools(root, {"hang": {"command": [PY, "hang.py"], "timeout": 600}}, ["hang"])
    script(ws, "hang.py", HANG)
    llm.script("alice", [call("hang"), text("never")])
    pids = ws.root / "pids.txt"

    async def main() -> None:
        from tests.turnkit import _run

        task = asyncio.ensure_future(_run(context(ws, "alice", "go", StubRuntime()), llm))
        while not pids.exists() or not pids.read_text():  # the tool is running (a file is the only signal)
            await asyncio.sleep(0.02)
        task.cancel()  # what the scheduler does to its turns when it stops
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    pgid, leader, child = map(int, pids.read_text().split())
    assert not alive(leader) and not alive(child) and not group_alive(pgid)


def test_output_is_clipped_to_the_tools_limit(root, llm):
    big = "import sys; sys.stdout.write('x' * 20000)"
    huge = "import sys\nfor _ in range(80): sys.stdout.write('y' * 65536)"
    ws = with_tools(
        root,
        {"big": {"command": [PY, "-c", big], "output_limit": 100}, "huge": {"command": [PY, "-c", huge]}},
        ["big", "huge"],
    )
    llm.script("alice", [call("big"), call("huge"), text("ok")])
    turn(ws, llm, "alice", "go")
    # the limit is what the model reads, the note of what was cut included
    assert tool_results(llm.requests[1]) == ["x" * 74 + "... [19926 more chars cut]"]  # 100 characters
    huge_seen = tool_results(llm.requests[2])[-1]
    note = f"... [cut: {80 * 65536:,} bytes in all]"
    assert huge_seen == "y" * (8000 - len(note)) + note and len(huge_seen) == 8000


def test_the_environment_is_scrubbed_of_model_keys(root, llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-tools")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-not-for-tools")
    monkeypatch.setenv("WEATHER_TOKEN", "w-123")
    ws = with_tools(
        root,
        {"plain": {"command": [PY, "echo.py"]}, "weather": {"command": [PY, "echo.py"], "env": ["WEATHER_TOKEN"]}},
        ["plain", "weather"],
    )
    script(ws, "echo.py", ECHO)
    llm.script("alice", [call("plain"), call("weather"), text("ok")])
    turn(ws, llm, "alice", "go")
    plain = json.loads(tool_results(llm.requests[1])[0])["env"]
    weather = json.loads(tool_results(llm.requests[2])[-1])["env"]
    for env in (plain, weather):
        assert "OPENAI_API_KEY" not in env and "ANTHROPIC_API_KEY" not in env
        assert not any("not-for-tools" in v for v in env.values())
        assert env["PATH"] == os.environ["PATH"]
    assert "WEATHER_TOKEN" not in plain and weather["WEATHER_TOKEN"] == "w-123"
    ours = {"AGENTS_WORKSPACE", "AGENTS_AGENT", "AGENTS_TOOL", "AGENTS_CALL_ID"}
    base = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}
    assert set(plain) <= base | ours and ours <= set(plain)


# -------------------------------------------------------------------------------------------- replays


def replay(ws: Workspace, llm, body: str, mid: str):
    """The same message's turn again (what the scheduler does after a crash before the commit)."""
    return run(context(ws, "alice", body, StubRuntime(), id=mid), llm)


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_replayed_turn_gets_the_recorded_result_and_runs_nothing(root, llm, idempotent):
    ws = with_tools(
        root, {"count": {"command": [PY, "count.py"], "args": {"n": "integer"}, "idempotent": idempotent}}, ["count"]
    )
    script(ws, "count.py", COUNT)
    llm.on("alice", lambda body: text("done") if tool_results(body) else call("count", n=1))
    mid = Message(recipient="alice", body="x").id
    first = replay(ws, llm, "count", mid)
    second = replay(ws, llm, "count", mid)
    assert (ws.root / "count.txt").read_text() == '{"n": 1}\n'  # ran once
    assert tool_results(llm.requests[1]) == tool_results(llm.requests[3]) == ["counted {'n': 1}"]
    assert first.reply == second.reply == ["done"]
    assert [e["replayed"] for e in tool_events(ws)] == [False, True]
    # a different call in the replay (models are not deterministic) is a new call, and runs
    llm.on("alice", lambda body: text("done") if tool_results(body) else call("count", n=2))
    replay(ws, llm, "count", mid)
    assert (ws.root / "count.txt").read_text() == '{"n": 1}\n{"n": 2}\n'


def started_only(ws: Workspace, mid: str, tool: str, args: dict) -> None:
    """What a crash while the command ran leaves: the intent recorded, no result."""
    from letta_cli.store.tool_results import ToolCalls

    ctx = context(ws, "alice", "x", StubRuntime(), id=mid)
    ToolCalls(ws).started(mid, ctx.edit_key(tool, args), tool)


def test_a_non_idempotent_call_started_before_a_crash_is_not_run_again(root, llm):
    ws = with_tools(
        root, {"count": {"command": [PY, "count.py"], "args": {"n": "integer"}}}, ["count"]
    )  # idempotent = false: the default
    script(ws, "count.py", COUNT)
    llm.on("alice", lambda body: text("checked") if tool_results(body) else call("count", n=1))
    mid = Message(recipient="alice", body="x").id
    started_only(ws, mid, "count", {"n": 1})
    record = replay(ws, llm, "count", mid)
    assert not (ws.root / "count.txt").exists()
    [seen] = tool_results(llm.requests[1])
    assert seen.startswith("Error: count: this call was started before an interruption") and "not run again" in seen
    assert record.status == "ok"
    replay(ws, llm, "count", mid)  # and again: the same answer, still nothing run
    assert tool_results(llm.requests[3]) == [seen] and not (ws.root / "count.txt").exists()


def test_an_idempotent_call_started_before_a_crash_runs_again(root, llm):
    ws = with_tools(
        root, {"count": {"command": [PY, "count.py"], "args": {"n": "integer"}, "idempotent": True}}, ["count"]
    )
    script(ws, "count.py", COUNT)
    llm.on("alice", lambda body: text("ok") if tool_results(body) else call("count", n=1))
    mid = Message(recipient="alice", body="x").id
    started_only(ws, mid, "count", {"n": 1})
    replay(ws, llm, "count", mid)
    assert (ws.root / "count.txt").read_text() == '{"n": 1}\n'
