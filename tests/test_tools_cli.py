"""`agents tools list/show/test` and `agents show` through the real CLI (one subprocess per behaviour shown),
including bad input: one line on stderr, a non-zero exit, no traceback."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import fails
from tests.harness import write_agent

ROLL = "import json, sys; print(json.load(sys.stdin)['sides'] // 2 + 1)"
TOOLS = f"""
[tools.roll_dice]
description = "Roll a die."
command = [{json.dumps(sys.executable)}, "-c", {json.dumps(ROLL)}]
args = {{ sides = "integer: how many sides" }}
timeout = 5

[tools.fail]
command = [{json.dumps(sys.executable)}, "-c", "import sys; sys.exit('broken on purpose')"]
"""


@pytest.fixture
def team(offline_cli, ws):
    (ws / "agents.toml").write_text("version = 1\n" + TOOLS)
    write_agent(ws, "worker", tags=["worker"], extra='tools = ["send_message", "roll_dice", "typo_tool"]')
    own = f'[command_tools.mine]\ncommand = [{json.dumps(sys.executable)}, "-c", "print(1)"]\n'
    write_agent(ws, "boss", extra='tools = ["mine"]\n' + own)
    return offline_cli


def test_list_shows_every_declaration_and_who_is_offered_it(team):
    rows = {r["name"]: r for r in team.ok("tools", "list", "--json").json()}
    assert set(rows) == {"roll_dice", "fail", "mine"}
    assert rows["roll_dice"]["source"] == "agents.toml" and rows["roll_dice"]["agents"] == ["worker"]
    assert rows["fail"]["agents"] == []
    assert rows["mine"]["source"] == "agents.d/boss.toml" and rows["mine"]["agents"] == ["boss"]
    assert rows["roll_dice"]["parameters"]["properties"]["sides"] == {
        "type": "integer",
        "description": "how many sides",
    }
    table = team.ok("tools").out  # the default: list
    assert "roll_dice" in table and "agents.d/boss.toml" in table


def test_show_one_tool(team):
    shown = team.ok("tools", "show", "roll_dice").out
    assert "description: Roll a die." in shown and "timeout: 5.0" in shown and '"sides"' in shown
    assert "agents: worker" in shown
    assert team.ok("tools", "show", "mine", "--json").json()["agents"] == ["boss"]


def test_test_runs_a_tool_once_by_hand(team, ws):
    res = team.ok("tools", "test", "roll_dice", '{"sides": 6}')
    assert res.out == "4\n"
    got = team.ok("tools", "test", "roll_dice", '{"sides": 20}', "--json").json()
    assert got["output"] == "11" and got["exit_code"] == 0 and got["error"] is None
    assert got["arguments"] == {"sides": 20} and got["duration_ms"] >= 0
    piped = team.ok("tools", "test", "roll_dice", "-", input='{"sides": 2}')
    assert piped.out == "2\n"
    events = [json.loads(line) for line in (ws / ".agents" / "trace.jsonl").read_text().splitlines()]
    assert [e["exit_code"] for e in events if e["event"] == "tool_test"] == [0, 0, 0]


def test_a_failing_tool_exits_1_with_its_error(team):
    res = team("tools", "test", "fail")
    assert res.code == 1 and "Traceback" not in res.err
    assert res.err.strip() == "agents: error: fail: exited with code 1: broken on purpose"
    res = team("tools", "test", "fail", "--json")
    assert res.code == 1 and res.json()["exit_code"] == 1


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("tools", "show", "roll_dise"), 3, "did you mean roll_dice"),
        (("tools", "test", "nope", "{}"), 3, "no command tool named 'nope'"),
        (("tools", "test", "send_message", "{}"), 3, "built-in tool"),
        (("tools", "test", "roll_dice", "{sides: 6"), 2, "not valid JSON"),
        (("tools", "test", "roll_dice", "[6]"), 2, "must be a JSON object"),
        (("tools", "test", "roll_dice", '{"sides": "6"}'), 2, "argument 'sides' must be an integer, got string"),
        (("tools", "test", "roll_dice", "{}"), 2, "missing argument sides"),
        (("tools", "show", "mine", "--agent", "ghost"), 3, "no agent named 'ghost'"),
    ],
)
def test_bad_input_is_one_line(team, args, code, needle):
    fails(team(*args), code, needle)


def test_a_bad_declaration_names_the_file(offline_cli, ws):
    (ws / "agents.toml").write_text('version = 1\n[tools.x]\ncommand = "rm -rf /"\n')
    fails(offline_cli("tools", "list"), 4, "agents.toml", "tools.x.command")
    (ws / "agents.toml").write_text('version = 1\n[tools.send_message]\ncommand = ["true"]\n')
    fails(offline_cli("tools", "list"), 4, "name of a built-in tool")


def test_agents_show_lists_the_custom_tools(team):
    shown = team.ok("show", "worker").out
    assert "# tool roll_dice from agents.toml: offered" in shown
    assert "# tool typo_tool: not declared (never offered)" in shown
    custom = team.ok("show", "worker", "--json").json()["custom_tools"]
    assert custom == [
        {"name": "roll_dice", "source": "agents.toml", "status": "offered"},
        {"name": "typo_tool", "source": None, "status": "not declared (never offered)"},
    ]


def test_a_command_tool_call_is_in_the_trace_views(cli, llm, ws):
    from tests.fakellm import call, text, tool_results

    with open(ws / "agents.toml", "a") as fh:
        fh.write(TOOLS)
    write_agent(ws, "worker", extra='tools = ["roll_dice"]')
    llm.on(
        "worker",
        lambda body: text("rolled " + tool_results(body)[0]) if tool_results(body) else call("roll_dice", sides=6),
    )
    res = cli.ok("-v", "send", "worker", "roll")
    assert res.out == "rolled 4\n"
    assert "roll_dice(sides=6) ✓ exit 0" in res.err
    [message] = cli.ok("trace", "--last", "--json").json()["messages"]
    [tool_call] = message["turn"]["tool_calls"]
    assert tool_call["tool"] == "roll_dice" and tool_call["result"] == "4"
    assert (tool_call["exit_code"], tool_call["timed_out"], tool_call["replayed"]) == (0, False, False)
