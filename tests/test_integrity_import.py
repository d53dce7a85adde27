"""Issue 15, import across a crash: an import is one staged change, so a kill -9 at any point leaves all of
it or none of it (once recovered), and running the same import again completes it instead of refusing it
("already exists")."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import CLI
from tests.test_agentfile import team

KILLED = -signal.SIGKILL


def imported(ws: Path) -> dict:
    """What of the team is in the workspace: agent files, shared blocks, whether a staging folder is left."""
    agents = sorted(p.name for p in (ws / "agents.d").glob("*.toml"))
    shared = ws / ".agents" / "blocks" / "shared"
    blocks = sorted(p.name for p in shared.glob("*.json")) if shared.exists() else []
    return {"agents": agents, "blocks": blocks, "staging": (ws / ".agents" / "staging").exists()}


@pytest.fixture
def team_file(tmp_path: Path) -> Path:
    return team(tmp_path)


def full(offline_cli: CLI, team_file: Path, tmp_path: Path) -> dict:
    """The workspace after a clean import, for comparison."""
    other = tmp_path / "clean"
    (other / "agents.d").mkdir(parents=True)
    CLI(other, offline_cli.env).ok("import", str(team_file))
    return imported(other)


@pytest.mark.parametrize("point", ["after_stage_commit", "after_stage_link@1", "after_stage_link@3"])
def test_a_kill_after_the_commit_point_is_completed_by_rerunning_the_import(
    offline_cli: CLI, ws: Path, tmp_path: Path, team_file: Path, point: str
):
    want = full(offline_cli, team_file, tmp_path)
    res = offline_cli("import", str(team_file), env={"LETTA_CLI_CRASH_AT": point})
    assert res.code == KILLED, res.err
    again = offline_cli("import", str(team_file), "--json")
    assert again.code == 0, again.err  # not "already exists"
    assert sorted(a["name"] for a in again.json()["agents"]) == [a.removesuffix(".toml") for a in want["agents"]]
    assert imported(ws) == want and not want["staging"]
    assert offline_cli("import", str(team_file)).code == 5  # a third time: the agents exist now, for real


@pytest.mark.parametrize("nth", [1, 2, 4])
def test_a_kill_before_the_commit_point_leaves_nothing_and_a_rerun_imports_all(
    offline_cli: CLI, ws: Path, tmp_path: Path, team_file: Path, nth: int
):
    want = full(offline_cli, team_file, tmp_path)
    res = offline_cli("import", str(team_file), env={"LETTA_CLI_CRASH_AT": f"during_atomic_write@{nth}"})
    assert res.code == KILLED, res.err
    assert imported(ws)["agents"] == [] and imported(ws)["blocks"] == []  # nothing of it is visible
    assert offline_cli("import", str(team_file)).code == 0
    assert imported(ws) == want


def test_the_scheduler_completes_an_import_killed_after_its_commit_point(cli: CLI, ws: Path, tmp_path, team_file):
    want = full(cli, team_file, tmp_path)
    assert cli("import", str(team_file), env={"LETTA_CLI_CRASH_AT": "after_stage_link@1"}).code == KILLED
    assert cli("run").code == 0
    assert imported(ws) == want
    for path in (ws / "agents.d").glob("*.toml"):
        assert path.read_text().startswith("version = 1")
    assert json.loads((ws / ".agents" / "blocks" / "shared" / want["blocks"][0]).read_text())["revision"] == 0


def test_imported_history_with_empty_assistant_content_is_sent_as_text(cli: CLI, ws: Path, tmp_path: Path, llm):
    from tests.fakellm import text
    from tests.test_agentfile import agent, doc

    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "send_message", "arguments": '{"message": "yo"}'}}
            ],
        },
        {"role": "tool", "content": None, "tool_call_id": "c1", "tool_returns": [{"func_response": "sent"}]},
        {"role": "assistant", "content": []},
    ]
    data = doc([agent("agent-0", "talker", messages=messages)])
    path = tmp_path / "talker.af"
    path.write_text(json.dumps(data))
    cli.ok("import", str(path), "--with-history")
    stored = [json.loads(line) for line in (ws / ".agents" / "history" / "talker.jsonl").read_text().splitlines()]
    assert [e.get("content") for e in stored] == ["hi", "", "sent", ""]  # "" not null
    llm.default = lambda body: text("ok")
    assert cli("send", "talker", "again").code == 0
    [request] = llm.requests
    assert all(isinstance(m["content"], str) for m in request["messages"]), request["messages"]
