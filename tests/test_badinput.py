"""The bad-input corpus (tests/badinput/): malformed and hostile agent files and agents.toml, corrupt block
files, corrupt queue files, bad command lines, and model responses that are garbage.

Each case must get a clear error -- ONE line on stderr, a non-zero exit, no traceback, no "internal error" --
or, for the model's mistakes, a tool error the model can read (the next request carries a tool message
starting with "Error:"); and it must change nothing else in the workspace (every file's bytes are compared,
except the trace and the files the command legitimately writes).

Data files: toml/*.toml (directives in leading comments: `# target:`, `# run:`, `# expect:`),
blocks/*.json (`private-*` is alice's private block persona, the rest the shared block notes), queue/*.json
(`corrupt-*` must be quarantined, `dead-*` dead-lettered, `NAME@FILE` installed as FILE), cli.txt (one
command line each), model/*.json (a scripted model: replies, expect, error). In any of them {{C*N}} stands
for C repeated N times, so huge inputs need no huge files.

The commands run through ForkCLI: the real entry point in a real, fresh child process per command, forked
from a server that imported letta_cli once (a Python start-up per case would cost minutes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import base_env
from tests.fakellm import FakeLLM, Reply, text, tool_results
from tests.harness import (
    CONFIG,
    ForkCLI,
    check_state,
    dead_reason,
    diff,
    one_line_error,
    publish,
    snapshot,
    user_turns,
    workspace,
    write_agent,
)

DATA = Path(__file__).parent / "badinput"
FID = "01a00000-0000-7000-8000-0000000000aa"
FAST = CONFIG.replace("model_retries = 2", "model_retries = 0\nmax_attempts = 2").replace(
    "retry_backoff = 0.05", "retry_backoff = 0.01"
)
SCHEDULER_FILES = (".agents/scheduler.", ".agents/trace.jsonl")
TURN_FILES = (".agents/queue", ".agents/turns", ".agents/history", *SCHEDULER_FILES)
PLACEHOLDER = re.compile(rb"\{\{(.+?)\*(\d+)\}\}")


def expand(data: bytes) -> bytes:
    return PLACEHOLDER.sub(lambda m: m[1] * int(m[2]), data)


def cases(pattern: str) -> list[Path]:
    return sorted(DATA.glob(pattern))


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def llm_server():
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fork(llm_server, tmp_path_factory):
    env = base_env(tmp_path_factory.mktemp("home"))
    env["OPENAI_BASE_URL"] = llm_server.url
    env["OPENAI_API_KEY"] = "sk-test-fake"
    runner = ForkCLI(env)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A small valid workspace: alice (tag team, shared block notes, private block persona) and bob."""
    root = tmp_path_factory.mktemp("template") / "ws"
    root.mkdir()
    (root / "agents.toml").write_text(FAST)
    write_agent(root, "alice", tags=["team"], shared=["notes"], blocks={"persona": "I am alice"})
    write_agent(root, "bob")
    from letta_cli.core.models import Block
    from letta_cli.store.agents import AgentStore
    from letta_cli.store.blocks import BlockStore

    w = workspace(root)
    w.ensure_state()
    store = BlockStore(w)
    store.create(Block(label="notes", value="start"))
    store.block_for(AgentStore(w).get("alice"), "persona")  # materialise the private block
    return root


@pytest.fixture
def ws(template, tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return root


@pytest.fixture
def model(llm_server):
    llm_server.requests.clear()
    llm_server.scripts.clear()
    llm_server.handlers.clear()
    llm_server.default = lambda body: text("final answer")
    return llm_server


def run(fork, ws: Path, argv: list[str], input: bytes | None = None):
    return fork("-w", str(ws), *argv, input=input, timeout=60)


def unchanged(ws: Path, before: dict, ignore: tuple[str, ...] = ()) -> None:
    after = snapshot(ws, ignore)
    before = {k: v for k, v in before.items() if not k.startswith(ignore)}
    assert diff(before, after) == [], "the failed command changed the workspace"


# --------------------------------------------------------------------------------------------------- TOML


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"#\s*(\w+):\s*(.*)$", line)
        if not m:
            break
        out.setdefault(m[1], []).append(m[2].strip())
    return out


@pytest.mark.parametrize("case", cases("toml/*.toml"), ids=lambda p: p.stem)
def test_toml(fork, ws, case):
    raw = case.read_bytes()
    spec = directives(raw.decode("utf-8", errors="replace"))
    target = ws / spec["target"][0]
    target.write_bytes(expand(raw))
    before = snapshot(ws)
    for command in spec["run"]:
        res = run(fork, ws, shlex.split(command))
        one_line_error(res)
        for expected in spec.get("expect", []):
            assert expected in res.err, f"{command}: {res.err}"
        assert str(target) in res.err or target.name in res.err, f"the error should name the file: {res.err}"
    unchanged(ws, before, SCHEDULER_FILES)


# ------------------------------------------------------------------------------------------------- blocks


@pytest.mark.parametrize("case", cases("blocks/*.json"), ids=lambda p: p.stem)
def test_corrupt_block(fork, ws, model, case):
    if case.name.startswith("private-"):
        path = ws / ".agents" / "blocks" / "private" / "alice" / "persona.json"
        commands = [
            ["blocks", "show", "persona", "--agent", "alice"],
            ["blocks", "append", "persona", "extra", "--agent", "alice"],
        ]
    else:
        path = ws / ".agents" / "blocks" / "shared" / "notes.json"
        commands = [["blocks", "show", "notes"], ["blocks", "append", "notes", "extra"]]
    commands.append(["memory", "alice"])
    path.write_bytes(expand(case.read_bytes()))
    before = snapshot(ws)
    for argv in commands:
        res = run(fork, ws, argv)
        one_line_error(res)
        assert str(path) in res.err, f"the error should name the file: {res.err}"
    unchanged(ws, before, SCHEDULER_FILES)
    # a turn of an agent that sees the broken block fails with that reason, and the block is left as it was
    res = run(fork, ws, ["send", "alice", "hi"])
    one_line_error(res, 7)
    assert str(path) in res.err
    assert model.requests == []
    unchanged(ws, before, TURN_FILES)


# -------------------------------------------------------------------------------------------------- queue


@pytest.mark.parametrize("case", cases("queue/*"), ids=lambda p: p.name)
def test_corrupt_queue_file(fork, ws, model, case):
    publish(ws, "alice", "companion")  # a good message next to the bad one
    outcome, _, name = case.name.partition("@")
    name = name or f"{FID}.json"
    data = expand(case.read_bytes())
    (ws / ".agents" / "queue" / "new" / name).write_bytes(data)
    before = snapshot(ws)
    res = run(fork, ws, ["run"])
    assert res.code == 0 and "Traceback" not in res.err, res.err
    assert user_turns(ws, "alice", content="companion") == 1, "the bad file blocked the queue"
    queue = ws / ".agents" / "queue"
    if outcome.startswith("dead"):
        where = [str(p.relative_to(queue)) for p in queue.rglob(f"{FID}*")]
        rec = ws / ".agents" / "turns" / f"{FID}.json"
        status = json.loads(rec.read_text())["status"] if rec.exists() else None
        assert (queue / "dead" / f"{FID}.json").exists(), f"not dead-lettered: queue has {where}, turn status {status}"
        assert (queue / "dead" / f"{FID}.json").read_bytes() == data
        reason = dead_reason(ws, FID)
        assert reason and "\n" not in reason, reason
        assert (
            not (ws / ".agents" / "turns" / f"{FID}.json").exists()
            or json.loads((ws / ".agents" / "turns" / f"{FID}.json").read_text())["status"] == "dead"
        )
        assert model.requests_for("alice") and len(model.requests) == 1, "the bad message reached the model"
    else:
        [kept] = [n for n in os.listdir(queue / "corrupt") if not n.endswith(".error.txt")]
        assert kept.startswith(name.removesuffix(".json")), kept  # (a claimed file carries its attempt: .a1)
        assert (queue / "corrupt" / kept).read_bytes() == data, "the quarantined file must be kept as it was"
        note = (queue / "corrupt" / f"{kept}.error.txt").read_text()
        assert note.strip() and len(note.strip().splitlines()) == 1, note
    unchanged(ws, before, TURN_FILES)
    check_state(ws, allow_corrupt=True)


# ---------------------------------------------------------------------------------------------- CLI args


def cli_cases() -> list[tuple[int, str]]:
    lines = (DATA / "cli.txt").read_text().splitlines()
    return [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("lineno,line", cli_cases(), ids=[f"line{n}" for n, _ in cli_cases()])
def test_bad_command_line(fork, ws, model, lineno, line):
    command, sep, stdin = line.partition("<<<")
    argv = [expand(a.encode()).decode().replace("{ws}", str(ws)).replace("{nl}", "\n") for a in shlex.split(command)]
    data = expand(stdin.strip().encode()) if sep else None
    before = snapshot(ws)
    res = run(fork, ws, argv, input=data)
    one_line_error(res)
    unchanged(ws, before)
    assert model.requests == []


# -------------------------------------------------------------------------------------------------- model


def reply(spec: dict) -> Reply:
    return Reply(
        content=spec.get("content"),
        tool_calls=spec.get("tool_calls", []),
        status=spec.get("status", 200),
        raw=spec.get("raw"),
    )


@pytest.mark.parametrize("case", cases("model/*.json"), ids=lambda p: p.stem)
def test_bad_model_response(fork, ws, model, case):
    spec = json.loads(expand(case.read_bytes()))
    replies = [reply(r) for r in spec["replies"]]
    if spec.get("repeat"):
        model.on("alice", lambda body: replies[0])
    else:
        model.script("alice", replies)
    blocks = ws / ".agents" / "blocks"
    before = snapshot(blocks)
    res = run(fork, ws, ["send", "alice", "hi"])
    if spec["expect"] == "fail":
        one_line_error(res)
        if "error" in spec:
            assert spec["error"] in res.err, res.err
        assert diff(before, snapshot(blocks)) == [], "a failed turn edited memory"
        return
    assert res.code == 0, res.err
    assert res.out.strip() == "final answer"
    bad_calls = spec["replies"][0].get("tool_calls") or [None]
    results = tool_results(model.requests[1])
    retries = [
        e.get("error")
        for e in map(json.loads, (ws / ".agents" / "trace.jsonl").read_text().splitlines())
        if e["event"] == "retry"
    ]
    assert len(results) == len(bad_calls), f"every tool call gets a result; instead the turn failed: {retries}"
    if spec["expect"] == "tool_error":
        assert any(r.startswith("Error:") for r in results), results
        assert all(spec.get("error", "") in r for r in results if r.startswith("Error:")), results
        assert len(results[0]) < 2000
        assert diff(before, snapshot(blocks)) == [], "a refused tool call edited memory"
