"""Security: API keys never reach a file, state files are private, names never escape the workspace, and
state files planted as symlinks never make letta-cli write outside it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import base_env
from tests.fakellm import call, error, text, tool_results
from tests.harness import (
    CONFIG,
    EchoServer,
    ForkCLI,
    diff,
    one_line_error,
    publish,
    shared_block,
    snapshot,
    write_agent,
)

SECRET = "sk-test-SECRET-4242"


def all_bytes_under(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def files_with_secret(root: Path) -> list[str]:
    return [
        str(p.relative_to(root))
        for p, data in all_bytes_under(root)
        if SECRET.encode() in data or b"SECRET-4242" in data
    ]


# -------------------------------------------------------------------------------------------------- keys


@pytest.fixture
def secret_cli(cli):
    cli.env["OPENAI_API_KEY"] = SECRET
    return cli


def test_api_key_is_never_written_to_any_file(secret_cli, llm, ws):
    cli = secret_cli
    write_agent(ws, "alice", tags=["team"], shared=["notes"])
    write_agent(ws, "bob", tags=["team"])
    shared_block(ws, "notes", "start")

    def alice(body):
        if tool_results(body):
            return text("done")
        return call("send_message_to_agent_async", other_agent_id="bob", message="psst")

    llm.on("alice", alice)
    cli.ok("send", "alice", "hi")
    cli.ok("broadcast", "--tags", "team", "status?")
    cli.ok("-v", "send", "bob", "verbose please")
    cli.ok("send", "bob", "later", "--no-wait")
    cli.ok("run")
    cli.ok("blocks", "append", "notes", "more")
    llm.on("bob", lambda body: error(401))
    assert cli("send", "bob", "this one fails").code == 7  # a dead letter with the endpoint's error
    cli.ok("export", "alice", "bob", "--with-history", "-o", str(ws / "team.af"))
    assert files_with_secret(ws) == []
    assert all(SECRET not in json.dumps(r) for r in llm.requests)  # not even in a prompt


def test_a_key_echoed_back_by_the_endpoint_is_not_stored(secret_cli, ws):
    server = EchoServer()
    try:
        write_agent(ws, "leaky", extra=f'base_url = "{server.url}"')
        res = secret_cli("send", "leaky", "hello")
    finally:
        server.stop()
    assert res.code == 7 and "401" in res.err
    assert SECRET not in res.err, "the key was printed"
    assert files_with_secret(ws) == [], "the key echoed by the endpoint was written to state files"


# ----------------------------------------------------------------------------------------------- modes


def test_state_files_and_folders_are_private_even_with_umask_0(cli, llm, ws):
    write_agent(ws, "alice", shared=["notes"], blocks={"persona": "me"})
    write_agent(ws, "bob", tags=["t"])

    def run(*args, code=0):
        argv = " ".join("'" + a.replace("'", "'\\''") + "'" for a in cli.argv(*args))
        proc = subprocess.run(["sh", "-c", f"umask 000; exec {argv}"], env=cli.env, capture_output=True, timeout=60)
        assert proc.returncode == code, proc.stderr.decode()

    run("blocks", "create", "notes", "--value", "x")
    run("send", "alice", "hi")
    run("broadcast", "--tags", "t", "hey")
    run("send", "bob", "queued", "--no-wait")
    run("blocks", "append", "notes", "y")
    run("blocks", "append", "persona", "z", "--agent", "alice")
    llm.on("bob", lambda body: error(401))
    run("send", "bob", "fails", code=7)  # a dead letter
    (ws / ".agents" / "queue" / "new" / "junk.txt").write_text("x")
    os.chmod(ws / ".agents" / "queue" / "new" / "junk.txt", 0o600)
    run("run")  # a quarantined file and its note
    state = ws / ".agents"
    folders = [state, *(p for p in state.rglob("*") if p.is_dir())]
    assert len(folders) >= 10  # blocks/private/alice, queue/*, history, turns: all made under umask 000
    wide = [
        f"{oct(p.stat().st_mode & 0o777)} {p.relative_to(ws)}" for p in folders if p.stat().st_mode & 0o777 != 0o700
    ]
    assert wide == [], "state folders not 0700"
    loose = [
        f"{oct(p.stat().st_mode & 0o777)} {p.relative_to(ws)}"
        for p in state.rglob("*")
        if p.is_file() and p.stat().st_mode & 0o077
    ]
    assert loose == [], "state files readable by others"


# ----------------------------------------------------------------------------------------------- names

BAD_NAMES = [
    "../x",
    "../../etc/passwd",
    "/abs",
    "a/b",
    "..",
    ".",
    "",
    "x/..",
    "a\\b",
    "a\nb",
    ".hidden",
    "\u0430lice",
    "alice ",
    "a" * 65,
]
CSV_OPTIONS = {"--tag", "--shared", "--tags"}  # lists like a,b: empty parts are dropped, spaces trimmed


@pytest.fixture(scope="module")
def fork(tmp_path_factory):
    env = base_env(tmp_path_factory.mktemp("home"))
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # never reached: every command here must fail first
    runner = ForkCLI(env)
    yield runner
    runner.close()


def name_commands(name: str) -> list[list[str]]:
    return [
        ["create", name],
        ["send", name, "hi", "--no-wait"],
        ["send", "alice", "hi", "--from", name, "--no-wait"],
        ["show", name],
        ["tag", name, "--add", "x"],
        ["delete", name, "--yes"],
        ["memory", name],
        ["blocks", "show", name],
        ["blocks", "show", "notes", "--agent", name],
        ["blocks", "create", name],
        ["blocks", "append", name, "x"],
        ["blocks", "append", "persona", "x", "--agent", name],
        ["blocks", "attach", "notes", name],
        ["blocks", "delete", name],
        ["broadcast", "--tags", name, "hi"],
        ["create", "newbie", "--tag", name],
        ["create", "newbie", "--shared", name],
        ["export", name],
        ["history", name],
    ]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_names_never_escape_the_workspace(fork, tmp_path, name):
    """Every command refuses the name with one clear line -- except list options (--tag a,b), which trim
    spaces and drop empty items -- and nothing outside the workspace is ever touched."""
    outer = tmp_path
    ws = outer / "inner" / "ws"
    ws.mkdir(parents=True)
    (ws / "agents.toml").write_text(CONFIG)
    write_agent(ws, "alice", shared=["notes"], blocks={"persona": "me"})
    shared_block(ws, "notes", "n")
    before = snapshot(outer)
    for argv in name_commands(name):
        res = fork("-w", str(ws), *argv, cwd=ws)
        if res.code == 2 and "No such command" in res.err:
            continue  # a command not built yet
        outside = [c for c in diff(before, snapshot(outer)) if not c[2:].startswith("inner/ws/")]
        assert outside == [], f"agents {argv} touched files outside the workspace"
        if res.code == 0 and CSV_OPTIONS & set(argv) and name.strip(" ,") in ("", "alice"):
            before = snapshot(outer)
            continue
        one_line_error(res)
        assert diff(before, snapshot(outer)) == [], f"agents {argv} changed files"


# -------------------------------------------------------------------------------------- planted symlinks


@pytest.mark.parametrize("planted", ["history/alice.jsonl", "trace.jsonl"])
def test_a_state_file_planted_as_a_symlink_is_never_written_through(cli, llm, ws, tmp_path, planted):
    """.agents/ is git-ignored, but a cloned repository can still carry it (git add -f). A symlink planted
    there must not make a turn append to a file outside the workspace (say ~/.bashrc)."""
    write_agent(ws, "alice")
    publish(ws, "alice", "warm-up")
    cli.ok("run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = ws / ".agents" / planted
    link.unlink()
    link.symlink_to(victim)
    res = cli("send", "alice", "hello")
    assert "Traceback" not in res.err
    assert victim.read_text() == "precious\n", f"a turn wrote through the planted symlink {planted}"


def test_agent_file_that_is_a_symlink_is_replaced_not_written_through(offline_cli, ws, tmp_path):
    outside = tmp_path / "outside.toml"
    outside.write_text('version = 1\nname = "evil"\n')
    (ws / "agents.d" / "evil.toml").symlink_to(outside)
    offline_cli.ok("tag", "evil", "--add", "x")
    assert outside.read_text() == 'version = 1\nname = "evil"\n'
