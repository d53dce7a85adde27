"""The `agents` command for agent definitions: init, create, list, show, delete, tag, edit.

Every test runs the real CLI in a subprocess against a fresh workspace and checks files and output.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from letta_cli.core.config import WorkspaceConfig, load_config
from letta_cli.core.errors import UsageError
from letta_cli.core.names import check_name
from tests.conftest import CLI, Result, fails

# The Letta tag table: which agents a `match_all` tag query returns.
TAG_TABLE = {"a1": ["primary", "b1"], "a2": ["primary", "b2"], "a3": ["primary", "b1", "b2"]}


# ------------------------------------------------------------------------------------------------ helpers


def write_agent(ws: Path, name: str, body: str = "", *, file_name: str | None = None) -> Path:
    """A hand-written agent file, as a user would type it."""
    path = ws / "agents.d" / f"{file_name or name}.toml"
    path.write_text(f'version = 1\nname = "{name}"\n{body}', encoding="utf-8")
    return path


def tag_table(ws: Path) -> None:
    for name, tags in TAG_TABLE.items():
        write_agent(ws, name, f"tags = {json.dumps(tags)}\n")


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mtime and bytes: equal snapshots mean nothing was touched."""
    snap: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        st = path.stat()
        snap[str(path.relative_to(root))] = (st.st_mtime_ns, path.read_bytes() if path.is_file() else None)
    return snap


def run_here(cwd: Path, env: dict[str, str], *args: str) -> Result:
    """The CLI without --workspace, started in `cwd`, so discovery decides the workspace."""
    proc = subprocess.run([sys.executable, "-m", "letta_cli", *args], cwd=cwd, env=env, capture_output=True, timeout=60)
    return Result(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def editor(tmp_path: Path, content: str | None, status: int = 0) -> dict[str, str]:
    """An $EDITOR that replaces the file it is given with `content` (or leaves it) and exits `status`."""
    script = tmp_path / f"editor-{abs(hash((content, status)))}.sh"
    lines = ["#!/bin/sh"]
    if content is not None:
        new = tmp_path / f"{script.stem}.new"
        new.write_text(content, encoding="utf-8")
        lines.append(f'cat "{new}" > "$1"')
    lines.append(f"exit {status}")
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    return {"EDITOR": str(script), "VISUAL": ""}


# ------------------------------------------------------------------------------------------------ init


def test_init_creates_workspace_with_commented_defaults(offline_cli: CLI, tmp_path: Path):
    target = tmp_path / "team"
    res = offline_cli.ok("init", str(target), "--json")
    assert res.json() == {"workspace": str(target), "created": ["agents.d/", "agents.toml", ".agents/"]}
    assert (target / "agents.d").is_dir()
    assert (target / ".agents" / ".gitignore").read_text().splitlines()[-1] == "*"
    text = (target / "agents.toml").read_text()
    assert "# max_steps = 10" in text
    assert load_config(target / "agents.toml") == WorkspaceConfig()  # every default is commented out


def test_init_without_dir_sets_up_the_workspace_option_not_the_current_folder(offline_cli: CLI, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = tmp_path / "given"
    res = run_here(elsewhere, offline_cli.env, "-w", str(target), "init")
    assert res.code == 0, res.err
    assert (target / "agents.toml").is_file() and (target / ".agents").is_dir()
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------------------------------------ create


def test_create_writes_every_option_to_the_file(offline_cli: CLI, ws: Path):
    res = offline_cli.ok(
        "create", "researcher", "--model", "gpt-x", "--system", "Dig.", "--description", "finds facts",
        "--tag", "team,research", "--tag", "team", "-t", "senior",
        "--memory", "persona=I dig = deep", "--memory", "notes=", "--shared", "plan", "--json",
    )  # fmt: skip
    path = ws / "agents.d" / "researcher.toml"
    data = tomllib.loads(path.read_text())
    assert data["model"] == "gpt-x" and data["system"] == "Dig." and data["description"] == "finds facts"
    assert data["tags"] == ["team", "research", "senior"]  # a,b split, duplicates dropped, order kept
    assert data["memory"]["blocks"]["persona"] == {"value": "I dig = deep"}
    assert data["memory"]["blocks"]["notes"] == {}  # an empty value is a default, left out
    assert data["memory"]["shared"] == ["plan"]
    shown = res.json()
    assert shown["path"] == str(path) and shown["name"] == "researcher" and shown["tags"] == data["tags"]


def test_create_system_prompt_from_file_and_stdin(offline_cli: CLI, ws: Path, tmp_path: Path):
    prompt = tmp_path / "boss.md"
    prompt.write_text("You run the team.\nBe brief.\n")
    offline_cli.ok("create", "boss", "--system-file", str(prompt))
    offline_cli.ok("create", "piped", "--system", "-", input="From stdin.\n")
    assert tomllib.loads((ws / "agents.d" / "boss.toml").read_text())["system"] == "You run the team.\nBe brief.\n"
    assert tomllib.loads((ws / "agents.d" / "piped.toml").read_text())["system"] == "From stdin."


def test_create_bad_options_are_usage_errors_and_write_nothing(offline_cli: CLI, ws: Path, tmp_path: Path):
    prompt = tmp_path / "p.md"
    prompt.write_text("x")
    before = snapshot(ws)
    fails(offline_cli("create", "x", "--system", "a", "--system-file", str(prompt)), 2, "not both")
    fails(offline_cli("create", "x", "--system-file", str(tmp_path / "missing.md")), 2, "missing.md")
    fails(offline_cli("create", "x", "--memory", "persona"), 2, "LABEL=VALUE")
    fails(offline_cli("create", "x", "--tag", "Team"), 2, "invalid tag 'Team'")
    assert snapshot(ws) == before


def test_create_refuses_an_existing_agent_without_force(offline_cli: CLI, ws: Path):
    offline_cli.ok("create", "helper", "-d", "first")
    path = ws / "agents.d" / "helper.toml"
    before = path.read_bytes()
    fails(offline_cli("create", "helper", "-d", "second"), 5, "already exists", "--force")
    assert path.read_bytes() == before
    offline_cli.ok("create", "helper", "-d", "second", "--force")
    assert tomllib.loads(path.read_text())["description"] == "second"


# ------------------------------------------------------------------------------------------------ names

BAD_NAMES = {
    "traversal": "../x",
    "slash": "a/b",
    "empty": "",
    "hidden": ".hidden",
    "cyrillic-a": "\u0430gent",  # looks exactly like "agent"
    "too-long": "a" * 65,
    "upper": "Agent",
    "underscore-first": "_x",
    "trailing-newline": "x\n",
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_name_rule(name: str):
    with pytest.raises(UsageError, match=r"invalid agent name .*: use lowercase letters"):
        check_name(name)


@pytest.mark.parametrize("name", ["../x", "", "\u0430gent", "a" * 65], ids=["traversal", "empty", "cyrillic", "65"])
def test_create_refuses_bad_names_and_writes_nothing(offline_cli: CLI, ws: Path, name: str):
    before = snapshot(ws.parent)
    # a look-alike is shown escaped, so the message explains itself
    shown = "'\\u0430gent'" if name == "\u0430gent" else repr(name)
    fails(offline_cli("create", name), 2, f"invalid agent name {shown}", "lowercase letters")
    assert snapshot(ws.parent) == before


def test_longest_name_is_accepted_and_a_minimal_file_holds_no_defaults(offline_cli: CLI, ws: Path):
    offline_cli.ok("create", "a" * 64)
    path = ws / "agents.d" / f"{'a' * 64}.toml"
    assert tomllib.loads(path.read_text()) == {"version": 1, "name": "a" * 64}


def test_no_command_reaches_outside_agents_d(offline_cli: CLI, ws: Path, tmp_path: Path):
    write_agent(ws, "x", file_name="../x")  # ws/x.toml: what `../x` would open if names were paths
    env = editor(tmp_path, "oops")
    before = snapshot(ws.parent)
    for args in (["delete", "../x", "--yes"], ["edit", "../x"]):  # every command goes through Workspace.agent_file
        fails(offline_cli(*args, env=env), 2, "invalid agent name")
    assert snapshot(ws.parent) == before


# ------------------------------------------------------------------------------------------------ list


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["primary", "b1"], ["a1", "a3"]),
        (["primary"], ["a1", "a2", "a3"]),
        (["primary", "nonexistent"], []),
    ],
)
def test_list_by_tags_matches_all_of_them(offline_cli: CLI, ws: Path, tags: list[str], expected: list[str]):
    tag_table(ws)
    res = offline_cli.ok("list", *[a for t in tags for a in ("--tag", t)], "--json")
    assert [a["name"] for a in res.json()] == expected


def test_list_tags_accept_commas_and_plain_output(offline_cli: CLI, ws: Path):
    tag_table(ws)
    res = offline_cli.ok("list", "--tag", "b1,b2")
    rows = res.out.splitlines()
    assert rows[0].split() == ["name", "|", "model", "|", "tags", "|", "description"]
    assert [r.split()[0] for r in rows[2:]] == ["a3"]
    assert "primary,b1,b2" in rows[2]


def test_list_json_shape(offline_cli: CLI, ws: Path):
    write_agent(ws, "helper", 'model = "gpt-x"\ntags = ["w"]\n[memory.blocks.persona]\nvalue = "hi"\n')
    (entry,) = offline_cli.ok("list", "--json").json()
    assert entry == {
        "version": 1,
        "name": "helper",
        "description": "",
        "model": "gpt-x",
        "base_url": None,
        "api_key_env": None,
        "system": "You are a helpful agent.",
        "tags": ["w"],
        "tools": None,
        "disabled_tools": [],
        "command_tools": {},
        "tool_rules": {"first": None, "terminal": ["send_message"]},
        "memory": {
            "blocks": {"persona": {"value": "hi", "limit": 5000, "description": "", "read_only": False}},
            "shared": [],
        },
        "limits": {
            "max_steps": None,
            "history_messages": None,
            "history_chars": None,
            "wait_timeout": None,
            "max_tokens": None,
        },
        "temperature": None,
    }


def test_one_broken_file_does_not_hide_the_others(offline_cli: CLI, ws: Path):
    tag_table(ws)
    broken = ws / "agents.d" / "broken.toml"
    broken.write_text('version = 1\nname = "broken"\ndescription = \ntags = []\n')
    res = offline_cli("list", "--json")
    assert res.code == 4 and "Traceback" not in res.err
    assert [a["name"] for a in res.json()] == ["a1", "a2", "a3"]
    expected = f"agents: error: {broken}: invalid TOML: Invalid value (at line 3, column 15)"
    assert res.err.strip().splitlines() == [expected]


# ------------------------------------------------------------------------------------------------ bad files


def test_each_invalid_definition_is_named_with_its_field(offline_cli: CLI, ws: Path):
    write_agent(ws, "good")
    broken = {
        "unknown": ("colour = 'blue'\n", "colour: Extra inputs are not permitted"),
        "range": ("temperature = 9\n", "temperature:"),
        "badtag": ('tags = ["Has Space"]\n', "invalid tag 'Has Space'"),
        "mismatch": ("", "name 'other' does not match the file name 'mismatch'"),
        "latin1": ("", "not UTF-8 text"),
    }
    for name, (body, _) in broken.items():
        write_agent(ws, "other" if name == "mismatch" else name, body, file_name=name)
    (ws / "agents.d" / "latin1.toml").write_bytes(b'version = 1\nname = "latin1"\ndescription = "caf\xe9"\n')
    res = offline_cli("list", "--json")
    assert res.code == 4 and "Traceback" not in res.err
    assert [a["name"] for a in res.json()] == ["good"]
    lines = sorted(res.err.strip().splitlines())
    assert len(lines) == len(broken)
    for line, name in zip(lines, sorted(broken), strict=False):
        assert line.startswith(f"agents: error: {ws / 'agents.d' / name}.toml: ") and broken[name][1] in line


# ------------------------------------------------------------------------------------------------ show


def test_show_prints_path_and_definition(offline_cli: CLI, ws: Path):
    offline_cli.ok("create", "helper", "-d", "does things", "-t", "w")
    path = ws / "agents.d" / "helper.toml"
    res = offline_cli.ok("show", "helper")
    first, rest = res.out.split("\n", 1)
    assert first == f"# {path}"
    assert tomllib.loads(rest) == tomllib.loads(path.read_text())
    shown = offline_cli.ok("show", "helper", "--json").json()
    assert shown["path"] == str(path) and shown["description"] == "does things" and shown["tags"] == ["w"]


def test_show_unknown_agent_suggests_close_names(offline_cli: CLI, ws: Path):
    write_agent(ws, "researcher")
    fails(offline_cli("show", "reseacher"), 3, "no agent named 'reseacher'", "did you mean researcher")


# ------------------------------------------------------------------------------------------------ delete


def test_delete(offline_cli: CLI, ws: Path):
    tag_table(ws)
    path = ws / "agents.d" / "a2.toml"
    fails(offline_cli("delete", "a2", input=""), 2, "--yes")  # no terminal to ask at
    assert path.exists()
    offline_cli.ok("delete", "a2", "--yes")
    assert not path.exists()
    assert sorted(p.name for p in (ws / "agents.d").iterdir()) == ["a1.toml", "a3.toml"]
    fails(offline_cli("delete", "a2", "-y"), 3, "no agent named 'a2'")


# ------------------------------------------------------------------------------------------------ tag


def test_tag_adds_and_removes(offline_cli: CLI, ws: Path):
    tag_table(ws)
    res = offline_cli.ok("tag", "a3", "--add", "senior,b1", "--remove", "b2", "--json")
    assert res.json() == {"name": "a3", "tags": ["primary", "b1", "senior"]}
    assert tomllib.loads((ws / "agents.d" / "a3.toml").read_text())["tags"] == ["primary", "b1", "senior"]
    assert offline_cli.ok("tag", "a3").out == "primary b1 senior\n"


def test_tag_rejects_a_bad_tag_without_writing(offline_cli: CLI, ws: Path):
    tag_table(ws)
    before = snapshot(ws)
    fails(offline_cli("tag", "a1", "--add", "Senior"), 2, "invalid tag 'Senior'")
    fails(offline_cli("tag", "nobody", "--add", "x"), 3, "no agent named 'nobody'")
    assert snapshot(ws) == before


# ------------------------------------------------------------------------------------------------ edit


def test_edit_keeps_a_valid_change(offline_cli: CLI, ws: Path, tmp_path: Path):
    path = write_agent(ws, "a1")
    new = '# my notes\nversion = 1\nname = "a1"\ndescription = "edited"\n'
    res = offline_cli("edit", "a1", env=editor(tmp_path, new))
    assert res.code == 0, res.err
    assert path.read_text() == new  # kept byte for byte, comments included


@pytest.mark.parametrize(
    "content, needle",
    [
        ('version = 1\nname = "a1"\ndescription = \n', "line 3"),  # TOML syntax
        ('version = 1\nname = "a2"\n', "does not match"),  # renamed inside the file
    ],
)
def test_edit_keeps_the_old_file_when_the_edit_is_invalid(
    offline_cli: CLI, ws: Path, tmp_path: Path, content: str, needle: str
):
    path = write_agent(ws, "a1", "# hand-written\n")
    before = snapshot(ws)
    fails(offline_cli("edit", "a1", env=editor(tmp_path, content)), 4, str(path), needle, "unchanged")
    assert snapshot(ws) == before


def test_edit_failing_or_missing_editor_changes_nothing(offline_cli: CLI, ws: Path, tmp_path: Path):
    write_agent(ws, "a1")
    before = snapshot(ws)
    fails(offline_cli("edit", "a1", env=editor(tmp_path, "garbage", status=1)), 2, "unchanged")
    fails(offline_cli("edit", "a1", env={"EDITOR": str(tmp_path / "no-such-editor"), "VISUAL": ""}), 2, "editor")
    res = offline_cli("edit", "a1", env=editor(tmp_path, None))  # saved without changes
    assert res.code == 0, res.err
    assert snapshot(ws) == before


# ------------------------------------------------------------------------------------------------ hand-edited files


HAND_WRITTEN = """\
# Written by hand; comments and layout must survive every read.
version = 1
name   = "{name}"
tags   = {tags}   # the team
system = '''
You are {name}.
'''
"""


def test_reading_commands_never_touch_files(offline_cli: CLI, ws: Path):
    for name, tags in TAG_TABLE.items():
        (ws / "agents.d" / f"{name}.toml").write_text(HAND_WRITTEN.format(name=name, tags=json.dumps(tags)))
    before = snapshot(ws)
    offline_cli.ok("list")
    offline_cli.ok("show", "a2", "--json")
    offline_cli.ok("tag", "a3", "--add", "b1")  # already there: nothing to change
    assert snapshot(ws) == before


def test_tag_changes_only_the_file_asked_for(offline_cli: CLI, ws: Path):
    for name, tags in TAG_TABLE.items():
        (ws / "agents.d" / f"{name}.toml").write_text(HAND_WRITTEN.format(name=name, tags=json.dumps(tags)))
    before = snapshot(ws)
    offline_cli.ok("tag", "a1", "--add", "new")
    after = snapshot(ws)
    assert set(after) == set(before)
    changed = {k for k in before if before[k] != after[k] and before[k][1] is not None}  # files, not folders
    assert changed == {"agents.d/a1.toml"}
    data = tomllib.loads((ws / "agents.d" / "a1.toml").read_text())
    assert data["tags"] == ["primary", "b1", "new"] and data["system"] == "You are a1.\n"


# ------------------------------------------------------------------------------------------------ discovery


def test_discovery_from_a_subfolder_and_agents_home(offline_cli: CLI, ws: Path, tmp_path: Path):
    write_agent(ws, "found")
    deep = ws / "src" / "deep"
    deep.mkdir(parents=True)
    res = run_here(deep, offline_cli.env, "show", "found", "--json")
    assert res.code == 0, res.err
    assert res.json()["path"] == str(ws / "agents.d" / "found.toml")

    other = tmp_path / "other"
    (other / "agents.d").mkdir(parents=True)
    write_agent(other, "elsewhere")
    res = run_here(deep, {**offline_cli.env, "AGENTS_HOME": str(other)}, "list", "--json")
    assert [a["name"] for a in res.json()] == ["elsewhere"]  # $AGENTS_HOME beats the upward search
    res = run_here(deep, {**offline_cli.env, "AGENTS_HOME": str(other)}, "-w", str(ws), "list", "--json")
    assert [a["name"] for a in res.json()] == ["found"]  # --workspace beats $AGENTS_HOME


# ------------------------------------------------------------------------------------- terminal, start-up, usage


def run_at_terminal(cli: CLI, env: dict[str, str], *args: str) -> bytes:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return everything it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cli.argv(*args), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks)


def test_no_colour_when_piped_or_no_color(offline_cli: CLI, ws: Path):
    tag_table(ws)
    plain_env = {k: v for k, v in offline_cli.env.items() if k != "NO_COLOR"}
    assert b"\x1b[" in run_at_terminal(offline_cli, plain_env, "list")  # a terminal does get styles
    assert b"\x1b[" not in run_at_terminal(offline_cli, {**plain_env, "NO_COLOR": "1"}, "list")
    piped = subprocess.run(offline_cli.argv("list"), env=plain_env, capture_output=True, timeout=30)
    assert piped.returncode == 0 and b"a3" in piped.stdout
    assert b"\x1b[" not in piped.stdout + piped.stderr


def test_list_does_not_import_the_model_client(offline_cli: CLI, ws: Path):
    tag_table(ws)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "letta_cli", "list"],
        cwd=ws, env=offline_cli.env, capture_output=True, timeout=60, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "letta_cli.store.agents" in modules  # the measurement really ran
    assert not {m for m in modules if m.split(".")[0] in ("openai", "httpx")}


def test_parser_errors_are_usage_errors(offline_cli: CLI):
    fails(offline_cli("list", "--colour"), 2, "--colour")


def test_changing_a_hand_edited_file_keeps_its_comments(offline_cli, ws):
    path = ws / "agents.d" / "alice.toml"
    path.write_text(
        '# Alice finds facts (written by hand)\nversion = 1\nname = "alice"\n'
        'description = "digs"  # why she exists\ntags = ["a", "b"]\n\n# notes\n[memory.blocks.persona]\nvalue = "I dig"\n'
    )
    offline_cli.ok("tag", "alice", "--add", "c", "--remove", "a")
    offline_cli.ok("blocks", "create", "team", "--value", "x")
    offline_cli.ok("blocks", "attach", "team", "alice")
    text = path.read_text()
    for kept in ("# Alice finds facts (written by hand)", 'description = "digs"  # why she exists', "# notes"):
        assert kept in text
    shown = offline_cli.ok("show", "alice", "--json").json()
    assert shown["tags"] == ["b", "c"] and shown["memory"]["shared"] == ["team"]
    assert shown["memory"]["blocks"]["persona"]["value"] == "I dig"
