"""`agents blocks ...` and `agents memory NAME`: the real CLI in a subprocess against a fresh workspace."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from letta_cli.app.agents import new_agent
from letta_cli.core.models import Block
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI, Result


def fails(res: Result, code: int, *needles: str) -> None:
    """A user error: the documented exit code, one clear line on stderr, never a traceback."""
    assert res.code == code, f"expected exit {code}, got {res.code}: {res.err}"
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agents: error: "), res.err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def block_file(ws: Path, label: str, owner: str | None = None) -> Path:
    folder = ws / ".agents/blocks" / ("shared" if owner is None else f"private/{owner}")
    return folder / f"{label}.json"


def shared_list(ws: Path, agent: str) -> list[str]:
    return tomllib.loads((ws / "agents.d" / f"{agent}.toml").read_text()).get("memory", {}).get("shared", [])


@pytest.fixture
def team(offline_cli: CLI, ws: Path) -> CLI:
    """alice (private persona + shared team) and bob (shared team), arranged through the library (fast)."""
    workspace = Workspace(ws)
    BlockStore(workspace).create(Block(label="team", value="Goal: ship v1", description="Team notes", limit=100))
    agents = AgentStore(workspace)
    agents.save(new_agent("alice", memory={"persona": "I am Alice."}, shared=["team"]))
    agents.save(new_agent("bob", shared=["team"]))
    return offline_cli


def test_create_show_and_list(team: CLI, ws: Path):
    shown = team.ok("blocks", "show", "team", "--json").json()
    assert shown["label"] == "team" and shown["value"] == "Goal: ship v1" and shown["limit"] == 100
    assert shown["chars"] == 13 and shown["shared"] is True and shown["revision"] == 0
    assert shown["attached"] == ["alice", "bob"] and shown["path"] == str(block_file(ws, "team"))
    assert json.loads(block_file(ws, "team").read_text())["description"] == "Team notes"

    text = team.ok("blocks", "show", "team").out
    assert text.splitlines()[0].startswith("# team (shared, revision 0, 13/100 chars)")
    assert text.splitlines()[1] == "Goal: ship v1"

    listed = team.ok("blocks", "list", "--json").json()
    assert [(b["label"], b["owner"], b["attached"]) for b in listed] == [("team", None, ["alice", "bob"])]
    listed = team.ok("blocks", "list", "--all", "--json").json()
    assert [(b["label"], b["owner"]) for b in listed] == [("team", None), ("persona", "alice")]
    assert [b["label"] for b in team.ok("blocks", "list", "--agent", "bob", "--json").json()] == ["team"]
    table = team.ok("blocks", "list", "--agent", "alice").out
    assert "persona" in table and "alice,bob" in table and "13/100" in table


def test_show_with_agent_finds_the_block_that_agent_sees(team: CLI):
    persona = team.ok("blocks", "show", "persona", "--agent", "alice", "--json").json()
    assert persona["owner"] == "alice" and persona["value"] == "I am Alice." and persona["shared"] is False
    assert team.ok("blocks", "show", "team", "--agent", "bob", "--json").json()["shared"] is True
    fails(team("blocks", "show", "persona", "--agent", "bob"), 3, "no memory block labelled 'persona'", "team")
    fails(team("blocks", "show", "persona"), 3, "no shared block 'persona'")
    fails(team("blocks", "show", "team", "--agent", "nobody"), 3, "no agent named 'nobody'")


def test_create_from_stdin_and_file_and_refusals(offline_cli: CLI, tmp_path: Path):
    cli = offline_cli
    made = cli.ok("blocks", "create", "a", "--value", "-", "--json", input="from stdin\n").json()
    assert made["value"] == "from stdin"
    (tmp_path / "rules.md").write_text("Be kind.\n")
    made = cli.ok("blocks", "create", "rules", "--file", str(tmp_path / "rules.md"), "--read-only", "--json").json()
    assert made["value"] == "Be kind.\n" and made["read_only"] is True
    fails(cli("blocks", "create", "a"), 5, "already exists")
    fails(cli("blocks", "create", "big", "--value", "12345", "--limit", "3"), 2, "2 over its limit of 3")
    fails(cli("blocks", "create", "Bad Label"), 2, "invalid block label")
    fails(cli("blocks", "create", "x", "--value", "v", "--file", "f"), 2, "not both")


def test_set_and_append_from_arguments_and_stdin(team: CLI, ws: Path):
    assert team.ok("blocks", "set", "team", "new plan", "--json").json()["value"] == "new plan"
    team.ok("blocks", "append", "team", "-", input="step 2\n")
    team.ok("blocks", "append", "team", input="step 3\n")
    assert json.loads(block_file(ws, "team").read_text())["value"] == "new plan\nstep 2\nstep 3"
    team.ok("blocks", "set", "team", "-", input="from a pipe\n")
    assert team.ok("blocks", "show", "team", "--json").json()["revision"] == 4
    team.ok("blocks", "set", "persona", "--agent", "alice", "I am Alice, v2.")
    assert json.loads(block_file(ws, "persona", "alice").read_text())["value"] == "I am Alice, v2."
    fails(team("blocks", "set", "team", "-", input=""), 2, "empty")


def test_read_only_blocks_refuse_the_cli_too_unless_forced(team: CLI, ws: Path):
    team.ok("blocks", "set", "team", "--read-only")  # a settings change needs no --force
    before = block_file(ws, "team").read_bytes()
    fails(team("blocks", "set", "team", "changed"), 5, "read-only", "--force")
    fails(team("blocks", "append", "team", "more"), 5, "read-only")
    assert block_file(ws, "team").read_bytes() == before
    forced = team.ok("blocks", "append", "team", "by a person", "--force", "--json").json()
    assert forced["value"].endswith("\nby a person")
    team.ok("blocks", "set", "team", "--writable")
    team.ok("blocks", "append", "team", "again")


def test_the_limit_holds_for_the_cli_and_can_be_raised(team: CLI):
    fails(team("blocks", "append", "team", "x" * 100), 5, "would be 114 chars, 14 over its limit of 100", "--limit")
    fails(team("blocks", "set", "team", "--limit", "5"), 5, "over its limit of 5")
    team.ok("blocks", "set", "team", "--limit", "200", "--description", "Bigger")
    shown = team.ok("blocks", "append", "team", "x" * 100, "--json").json()
    assert shown["chars"] == 114 and shown["limit"] == 200 and shown["description"] == "Bigger"


def test_attach_and_detach_edit_the_agent_files(team: CLI, ws: Path):
    team.ok("blocks", "create", "plan")
    assert team.ok("blocks", "attach", "plan", "alice", "bob", "--json").json()["attached"] == ["alice", "bob"]
    assert shared_list(ws, "alice") == ["team", "plan"]
    assert team.ok("blocks", "attach", "plan", "alice", "--json").json() == {
        "label": "plan",
        "attached": [],
        "unchanged": ["alice"],
    }
    assert [b.get("label") for b in team.ok("memory", "bob", "--json").json()["blocks"]] == ["team", "plan"]
    assert team.ok("blocks", "detach", "plan", "bob", "--json").json()["detached"] == ["bob"]
    assert shared_list(ws, "bob") == ["team"]
    fails(team("blocks", "attach", "nothing", "bob"), 3, "no shared block 'nothing'")


def test_attach_refuses_a_second_block_with_the_same_label(team: CLI, ws: Path):
    team.ok("blocks", "create", "persona")
    before = {p.name: p.read_bytes() for p in (ws / "agents.d").iterdir()}
    res = team("blocks", "attach", "persona", "bob", "alice")
    fails(res, 5, "agent 'alice' has a private block labelled 'persona'")
    assert {p.name: p.read_bytes() for p in (ws / "agents.d").iterdir()} == before  # bob untouched too


def test_delete_is_refused_while_attached(team: CLI, ws: Path):
    fails(team("blocks", "delete", "team"), 5, "attached to alice, bob", "agents blocks detach team alice bob")
    team.ok("blocks", "detach", "team", "alice", "bob")
    deleted = team.ok("blocks", "delete", "team", "--json").json()
    assert deleted == {"label": "team", "deleted": True, "still_listed_by": []}
    assert not block_file(ws, "team").exists() and not block_file(ws, "team").with_name("team.log.jsonl").exists()
    fails(team("blocks", "delete", "team"), 3, "no shared block 'team'")


def test_forced_delete_warns_about_agents_that_still_list_it(team: CLI):
    res = team.ok("blocks", "delete", "team", "--force")
    assert "alice, bob still list team" in res.err
    fails(team("memory", "alice"), 3, "agent 'alice' lists shared block 'team', which does not exist")


def test_log_shows_who_when_which_tool_and_sizes(team: CLI):
    team.ok("blocks", "append", "team", "more")
    entries = team.ok("blocks", "log", "team", "--json").json()
    assert [(e["actor"], e["tool"], e["before"], e["after"], e["revision"]) for e in entries] == [
        ("cli", "create", 0, 13, 0),
        ("cli", "append", 13, 18, 1),
    ]
    assert entries[0]["at"].startswith("20")
    assert "13 -> 18" in team.ok("blocks", "log", "team").out
    team.ok("memory", "alice")  # first use creates alice's private persona block
    assert [e["tool"] for e in team.ok("blocks", "log", "persona", "--agent", "alice", "--json").json()] == ["create"]


def test_memory_shows_what_one_agent_sees(team: CLI):
    text = team.ok("memory", "alice").out
    assert text.startswith("<memory_blocks>")
    assert '<block label="persona" read_only="false">' in text and "<chars>11/5000</chars>" in text
    assert '<block label="team" shared="true" read_only="false">' in text and "<chars>13/100</chars>" in text
    assert "<description>Team notes</description>" in text
    data = team.ok("memory", "alice", "--json").json()
    assert data["agent"] == "alice" and data["rendered"] + "\n" == text
    assert [(b["label"], b["owner"]) for b in data["blocks"]] == [("persona", "alice"), ("team", None)]
    team.ok("create", "loner")
    assert team.ok("memory", "loner").out == ""


def test_two_blocks_with_one_label_are_reported_not_rendered(team: CLI, ws: Path):
    (ws / "agents.d/carol.toml").write_text(
        'version = 1\nname = "carol"\n[memory]\nshared = ["team"]\n[memory.blocks.team]\nvalue = "mine"\n'
    )
    fails(team("memory", "carol"), 4, "two blocks labelled 'team'", "carol.toml", str(block_file(ws, "team")))


def test_corrupt_block_json_is_one_clear_line_naming_the_file(team: CLI, ws: Path):
    path = block_file(ws, "team")
    path.write_text('{"label": "team", "value": ')
    for args in (["blocks", "show", "team"], ["blocks", "append", "team", "x"], ["memory", "alice"]):
        fails(team(*args), 4, f"{path}: invalid JSON")
    res = team("blocks", "list")
    assert res.code == 4 and f"{path}: invalid JSON" in res.err and "Traceback" not in res.err


def test_eight_processes_appending_at_once_lose_nothing(team: CLI, ws: Path):
    procs = [
        team.popen("blocks", "append", "team", f"line {i}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    block = json.loads(block_file(ws, "team").read_text())
    lines = block["value"].split("\n")
    assert lines[0] == "Goal: ship v1" and sorted(lines[1:]) == [f"line {i}" for i in range(8)]
    assert block["revision"] == 8
    entries = team.ok("blocks", "log", "team", "--json").json()
    appends = [e for e in entries if e["tool"] == "append"]
    assert len(appends) == 8 and sorted(e["revision"] for e in appends) == list(range(1, 9))
    assert [e["tool"] for e in entries] == ["create"] + ["append"] * 8


def test_a_crash_mid_write_leaves_the_block_whole(team: CLI, ws: Path):
    before = block_file(ws, "team").read_bytes()
    res = team("blocks", "append", "team", "lost", env={"LETTA_CLI_CRASH_AT": "during_atomic_write"})
    assert res.code == -9
    assert block_file(ws, "team").read_bytes() == before
    assert [b["label"] for b in team.ok("blocks", "list", "--json").json()] == ["team"]
    assert team.ok("blocks", "append", "team", "kept", "--json").json()["revision"] == 1
