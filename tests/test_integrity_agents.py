"""Issue 15, lost updates between shells: every change to an agent file is one locked read-modify-write,
`create` is exclusive, `edit` never saves over a file that changed (or vanished) while the editor was open,
and a workspace that does not exist is an error. Real processes, started together."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import CLI, fails
from tests.harness import shared_block, wait_until, write_agent


def together(cli: CLI, commands: list[list[str]]) -> list[tuple[int, str]]:
    """Start every command at once (real `agents` processes) and collect (exit code, stderr) of each."""
    procs = [cli.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for args in commands]
    results = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        results.append((proc.returncode, err.decode()))
    return results


def agent_data(ws: Path, name: str) -> dict:
    return tomllib.loads((ws / "agents.d" / f"{name}.toml").read_text())


def test_12_parallel_tag_adds_keep_all_12_tags(offline_cli: CLI, ws: Path):
    write_agent(ws, "bob")
    results = together(offline_cli, [["tag", "bob", "--add", f"t{i}"] for i in range(12)])
    assert [code for code, _ in results] == [0] * 12, results
    assert sorted(agent_data(ws, "bob")["tags"]) == sorted(f"t{i}" for i in range(12))


def test_6_parallel_block_attaches_are_all_recorded(offline_cli: CLI, ws: Path):
    write_agent(ws, "bob")
    for i in range(6):
        shared_block(ws, f"b{i}")
    results = together(offline_cli, [["blocks", "attach", f"b{i}", "bob"] for i in range(6)])
    assert [code for code, _ in results] == [0] * 6, results
    assert sorted(agent_data(ws, "bob")["memory"]["shared"]) == [f"b{i}" for i in range(6)]
    results = together(offline_cli, [["blocks", "detach", f"b{i}", "bob"] for i in range(0, 6, 2)])
    assert [code for code, _ in results] == [0] * 3, results
    assert sorted(agent_data(ws, "bob")["memory"]["shared"]) == ["b1", "b3", "b5"]


def test_8_parallel_creates_of_one_name_exactly_one_wins(offline_cli: CLI, ws: Path):
    results = together(offline_cli, [["create", "dup", "-d", f"writer {i}"] for i in range(8)])
    winners = [i for i, (code, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    for i, (code, err) in enumerate(results):
        if i not in winners:
            assert code == 5 and "already exists" in err and "Traceback" not in err, err
    assert agent_data(ws, "dup")["description"] == f"writer {winners[0]}"  # the winner's file, not overwritten
    assert [p.name for p in (ws / "agents.d").iterdir()] == ["dup.toml"]  # no temp file left


EDITOR = """
import sys, time
from pathlib import Path
draft, opened, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
opened.write_text("open")
while not go.exists():  # the person is still typing
    time.sleep(0.02)
draft.write_text(draft.read_text().replace('description = "old"', 'description = "edited"'))
"""


def slow_editor(offline_cli: CLI, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    opened, go = tmp_path / "opened", tmp_path / "go"
    wrapper = tmp_path / "editor.sh"  # the editor gets the draft's path; the markers come from here
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$1" {opened} {go}\n')
    wrapper.chmod(0o755)
    env = {"EDITOR": str(wrapper)}
    proc = offline_cli.popen("edit", "bob", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(opened.exists, 60, "the editor to open")
    return proc, go


def test_edit_refuses_to_save_over_a_tag_made_while_the_editor_was_open(offline_cli: CLI, ws: Path, tmp_path):
    write_agent(ws, "bob", extra='description = "old"')
    proc, go = slow_editor(offline_cli, tmp_path)
    assert offline_cli("tag", "bob", "--add", "meanwhile").code == 0
    go.write_text("go")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err
    line = err.decode().strip()
    assert line.startswith("agents: error: ") and "changed by another command" in line and "\n" not in line
    data = agent_data(ws, "bob")
    assert data["tags"] == ["meanwhile"] and data["description"] == "old"  # the tag survives
    kept = Path(line.rsplit("kept in ", 1)[1].rstrip(")"))
    assert 'description = "edited"' in kept.read_text()  # the person's edit is not lost either


def test_edit_refuses_to_resurrect_an_agent_deleted_while_the_editor_was_open(offline_cli: CLI, ws, tmp_path):
    write_agent(ws, "bob", extra='description = "old"')
    proc, go = slow_editor(offline_cli, tmp_path)
    assert offline_cli("delete", "bob", "--yes").code == 0
    go.write_text("go")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 5 and "was deleted while the editor was open" in err.decode(), err
    assert not (ws / "agents.d" / "bob.toml").exists()


def test_a_missing_workspace_is_an_error_except_for_init(offline_cli: CLI, tmp_path: Path):
    missing = tmp_path / "no" / "such" / "dir"
    base = CLI(missing, offline_cli.env)
    fails(base("list"), 3, "no workspace at", str(missing))
    fails(base("create", "x"), 3, "no workspace at")
    fails(base("send", "x", "hi"), 3, "no workspace at")
    assert not (tmp_path / "no").exists()  # nothing made on the way
    assert base("init").code == 0 and (missing / "agents.d").is_dir()
    assert base("create", "x").code == 0
