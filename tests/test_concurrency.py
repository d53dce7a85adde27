"""Concurrency: many producers while the scheduler watches, concurrent block edits from the CLI and from
agents' turns, and the one-scheduler rule.

The 16 x 50 real-CLI variant launches 800 Python processes (~5 CPU-minutes); by default the real-CLI
variant runs 16 shells x LETTA_CLI_CLI_SENDS (default 2) sends, and the 16 x 50 = 800 variant uses a tiny
Python loop per process calling the library's publish. LETTA_CLI_CLI_SENDS=50 runs the full real-CLI load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.fakellm import call, text, tool_results
from tests.harness import REPO, check_state, history, publish, shared_block, wait_until, write_agent

AGENTS = ("alice", "bob", "carol", "dave")
SHELLS = 16

PRODUCER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from letta_cli.app import messaging as client
from letta_cli.store.workspace import Workspace
ws, p, n, agents = Workspace(Path(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(",")
for j in range(n):
    client.publish(ws, [agents[(p + j) % len(agents)]], f"p{p}-m{j}")
"""


def bodies_handled(ws) -> Counter:
    """How often each message body was handled, over every agent's history."""
    seen: Counter = Counter()
    for name in AGENTS:
        for h in history(ws, name):
            if h["role"] == "user":
                seen[h["content"]] += 1
    return seen


def turn_count(ws) -> int:
    turns = ws / ".agents" / "turns"
    return sum(1 for n in os.listdir(turns) if n.endswith(".json")) if turns.exists() else 0


@pytest.fixture
def four(cli, llm, ws):
    for name in AGENTS:
        write_agent(ws, name)
    llm.default = lambda body: text("ack")
    return cli


def start_watcher(cli, ws) -> subprocess.Popen:
    """`agents run --watch`, returned once it serves (its start-up recovery is over: see
    test_scheduler_start_leaves_live_producers_temp_files_alone for why that matters)."""
    before = turn_count(ws)
    publish(ws, "alice", "warm-up")
    watcher = cli.popen("run", "--watch", stderr=subprocess.PIPE)
    wait_until(lambda: turn_count(ws) > before, 60, "the watcher's first turn")
    return watcher


def stop(watcher: subprocess.Popen) -> None:
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(timeout=30) == 0


def test_16_processes_x_50_sends_while_the_scheduler_watches(four, llm, ws, tmp_path):
    watcher = start_watcher(four, ws)
    try:
        producers = [
            subprocess.Popen(
                [sys.executable, "-c", PRODUCER, str(REPO), str(ws), str(p), "50", ",".join(AGENTS)],
                env=four.env,
                stderr=subprocess.PIPE,
            )
            for p in range(SHELLS)
        ]
        for proc in producers:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err.decode()[-2000:]
        wait_until(lambda: turn_count(ws) >= SHELLS * 50 + 1, 120, "800 turn records")
    finally:
        stop(watcher)
    seen = bodies_handled(ws)
    assert seen.pop("warm-up") == 1
    expected = {f"p{p}-m{j}" for p in range(SHELLS) for j in range(50)}
    assert set(seen) == expected, f"lost: {sorted(expected - set(seen))[:10]}"
    assert [b for b, n in seen.items() if n != 1] == [], "handled more than once"
    assert len(llm.requests) == SHELLS * 50 + 1
    check_state(ws)


def test_16_shells_of_real_cli_sends_while_the_scheduler_watches(four, llm, ws):
    n = int(os.environ.get("LETTA_CLI_CLI_SENDS", "2"))
    watcher = start_watcher(four, ws)
    argv = " ".join(f"'{a}'" for a in four.argv())
    try:
        shells = [
            subprocess.Popen(
                [
                    "sh",
                    "-c",
                    f"for j in $(seq 0 {n - 1}); do {argv.replace('-w', '-q -w', 0)} send "
                    f'{AGENTS[p % 4]} "s{p}-m$j" --no-wait >/dev/null || exit 1; done',
                ],
                env=four.env,
                stderr=subprocess.PIPE,
            )
            for p in range(SHELLS)
        ]
        for proc in shells:
            _, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err.decode()[-2000:]
        wait_until(lambda: turn_count(ws) >= SHELLS * n + 1, 60, "every turn record")
    finally:
        stop(watcher)
    seen = bodies_handled(ws)
    assert seen.pop("warm-up") == 1
    expected = {f"s{p}-m{j}" for p in range(SHELLS) for j in range(n)}
    assert set(seen) == expected and all(v == 1 for v in seen.values()), seen
    check_state(ws)


def test_concurrent_block_edits_from_the_cli_and_from_agents_lose_nothing(cli, llm, ws):
    shared_block(ws, "notes", "")
    for name in AGENTS:
        write_agent(ws, name, shared=["notes"])

    def appender(body):
        if tool_results(body):
            return text("noted")
        msg = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        return call("core_memory_append", label="notes", content=f"agent {msg}")

    llm.default = appender
    turns = 6
    for i in range(turns):
        for name in AGENTS:
            publish(ws, name, f"{name}-{i}")
    scheduler = cli.popen("run", stderr=subprocess.PIPE)
    shells, per_shell = 4, 4
    argv = " ".join(f"'{a}'" for a in cli.argv())
    editors = [
        subprocess.Popen(
            [
                "sh",
                "-c",
                f'for j in $(seq 0 {per_shell - 1}); do {argv} blocks append notes "cli {p}-$j" >/dev/null || exit 1; done',
            ],
            env=cli.env,
            stderr=subprocess.PIPE,
        )
        for p in range(shells)
    ]
    for proc in editors:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    _, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode == 0, err.decode()
    block = json.loads((ws / ".agents" / "blocks" / "shared" / "notes.json").read_text())
    lines = Counter(block["value"].split("\n"))
    expected = {f"cli {p}-{j}" for p in range(shells) for j in range(per_shell)}
    expected |= {f"agent {name}-{i}" for name in AGENTS for i in range(turns)}
    assert set(lines) == expected, f"lost: {sorted(expected - set(lines))}"
    assert all(n == 1 for n in lines.values()), "an edit was applied twice"
    assert block["revision"] == len(expected)
    log = (ws / ".agents" / "blocks" / "shared" / "notes.log.jsonl").read_text().splitlines()
    assert len(log) == len(expected) + 1  # + the creation
    check_state(ws)


def test_a_second_scheduler_is_refused_and_a_waiting_send_is_served_by_the_first(four, llm, ws):
    watcher = start_watcher(four, ws)
    try:
        llm.script("alice", [text("from the watcher")])
        second = four("run")
        assert second.code == 5 and "already running" in second.err and len(second.err.splitlines()) == 1
        second_watch = four("run", "--watch", timeout=30)
        assert second_watch.code == 5
        res = four.ok("send", "alice", "hello")
        assert res.out.strip() == "from the watcher"
        pid = int((ws / ".agents" / "scheduler.pid").read_text())
        assert pid == watcher.pid  # the send waited for the watcher instead of serving itself
    finally:
        stop(watcher)
    check_state(ws)


def test_scheduler_start_leaves_live_producers_temp_files_alone(four, ws):
    """A producer writes queue/tmp/<id>.<pid>-<rand>, fsyncs it, then links it into new/, with no lock. A
    scheduler starting in between must not delete that file (found by the tests above: the concurrent
    `agents send` then died with "internal error: FileNotFoundError", exit 70). Only temp files of dead
    processes are garbage."""
    publish(ws, "alice", "warm-up")  # creates the queue folders
    tmp = ws / ".agents" / "queue" / "tmp"
    live = tmp / f"01a00000-0000-7000-8000-000000000001.{os.getpid()}-0123456789ab"
    live.write_text("{}")
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    dead = tmp / f"01a00000-0000-7000-8000-000000000002.{gone.pid}-0123456789ab"
    dead.write_text("{}")
    four.ok("run")
    assert not dead.exists(), "an abandoned temp file of a dead producer should be swept"
    assert live.exists(), "the scheduler deleted the temp file of a producer that is still running"
