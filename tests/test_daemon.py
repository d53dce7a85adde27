"""The scheduler daemon (#18): started on demand by a waiting send, each turn with its caller's environment
(never on disk), visible in `agents status`, stopped by `agents stop` or by being idle, and a kill -9 of it
loses no message. The rest of the suite runs with AGENTS_DAEMON=0 (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI
from tests.fakellm import FakeLLM, text
from tests.harness import write_agent

ON = {"AGENTS_DAEMON": "1"}


@pytest.fixture
def dcli(cli: CLI, ws: Path) -> Iterator[CLI]:
    """The CLI with the daemon on; whatever daemon the test started is stopped (or killed) at the end."""
    write_agent(ws, "bob")
    on = CLI(ws, {**cli.env, **ON})
    yield on
    info = daemon_info(on)
    on("stop")
    if info is not None:
        with_pid_gone(info["pid"], timeout=10, kill=True)


def daemon_info(cli: CLI) -> dict | None:
    return cli.ok("status", "--json").json()["daemon"]


def with_pid_gone(pid: int, timeout: float, kill: bool = False) -> bool:
    """Wait (on a pidfd: an event, not a sleep) until process `pid` has exited; with `kill`, SIGKILL it
    if it has not by then."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        gone = bool(select.select([fd], [], [], timeout)[0])
        if not gone and kill:
            os.kill(pid, signal.SIGKILL)
            select.select([fd], [], [], 10)
        return gone
    finally:
        os.close(fd)


def test_a_send_starts_the_daemon_and_the_next_one_uses_it(dcli: CLI, ws: Path, llm: FakeLLM):
    assert dcli.ok("send", "bob", "hi").out.strip() == "ok from bob"
    info = daemon_info(dcli)
    assert info is not None and info["idle_timeout"] == 60
    status = dcli.ok("status", "--json").json()["scheduler"]
    assert status == {"running": True, "pid": info["pid"], "kind": "daemon"}
    sock = ws / ".agents" / "scheduler.sock"
    assert info["socket"] == str(sock)
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE((ws / ".agents").stat().st_mode) == 0o700
    assert dcli.ok("send", "bob", "again").out.strip() == "ok from bob"
    again = daemon_info(dcli)
    assert again is not None and again["pid"] == info["pid"] and again["handled"] == 2
    assert "daemon" in dcli.ok("status").out
    assert len(llm.requests) == 2


def test_each_turn_uses_its_callers_environment_and_none_of_it_reaches_the_disk(dcli: CLI, ws: Path, llm: FakeLLM):
    other = FakeLLM()
    other.start()
    try:
        first = {"OPENAI_API_KEY": "sk-caller-one-0123456789", "OPENAI_BASE_URL": llm.url}
        second = {"OPENAI_API_KEY": "sk-caller-two-9876543210", "OPENAI_BASE_URL": other.url}
        dcli.ok("send", "bob", "one", env=first)  # starts the daemon with this environment
        pid = daemon_info(dcli)["pid"]  # type: ignore[index]
        dcli.ok("send", "bob", "two", env=second)  # the same daemon, another caller
        assert daemon_info(dcli)["pid"] == pid  # type: ignore[index]
        assert [r["messages"][-1]["content"] for r in llm.requests] == ["one"]
        assert [r["messages"][-1]["content"] for r in other.requests] == ["two"]
        for path in (ws / ".agents").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert b"sk-caller-one" not in data and b"sk-caller-two" not in data, path
    finally:
        other.stop()


def test_the_daemon_exits_when_idle_and_the_next_send_starts_another(dcli: CLI, ws: Path, llm: FakeLLM):
    with open(ws / "agents.toml", "a") as fh:
        fh.write("daemon_idle_timeout = 3\n")  # long enough for `agents status` to ask it on a loaded box
    dcli.ok("send", "bob", "hi")
    info = daemon_info(dcli)
    assert info is not None and info["idle_timeout"] == 3
    assert with_pid_gone(info["pid"], timeout=15)
    assert daemon_info(dcli) is None
    assert not (ws / ".agents" / "scheduler.sock").exists()
    dcli.ok("send", "bob", "hi")
    assert daemon_info(dcli)["pid"] != info["pid"]  # type: ignore[index]


def test_stop_stops_it_and_says_so(dcli: CLI, llm: FakeLLM):
    assert dcli.ok("stop").out.strip() == "no scheduler daemon is running"
    dcli.ok("send", "bob", "hi")
    pid = daemon_info(dcli)["pid"]  # type: ignore[index]
    assert dcli.ok("stop").out.strip() == f"stopped the scheduler daemon (pid {pid})"
    assert with_pid_gone(pid, timeout=10)
    assert dcli.ok("status", "--json").json()["scheduler"]["running"] is False


def test_no_wait_does_not_start_a_daemon_and_agents_run_still_serves(dcli: CLI, ws: Path, llm: FakeLLM):
    dcli.ok("send", "bob", "--no-wait", "hi")
    assert daemon_info(dcli) is None
    assert dcli.ok("run", "--json").json() == {"handled": 1}


def test_agents_run_takes_over_from_a_daemon_with_its_own_environment(dcli: CLI, ws: Path, llm: FakeLLM):
    """`send --no-wait && agents run` right after a waiting send: the daemon that send started hands over,
    and the turn it was running (its model slow to answer) goes back to the queue and runs here."""
    llm.script("bob", [text("ok from bob"), text("too late", delay=60)])
    dcli.ok("send", "bob", "hi")
    pid = daemon_info(dcli)["pid"]  # type: ignore[index]
    dcli.ok("send", "bob", "--no-wait", "later")
    llm.wait_for_requests(2, timeout=30)  # the daemon's turn is waiting on the model
    other = FakeLLM()
    other.script("bob", [text("served by agents run")])
    other.start()
    try:
        assert dcli.ok("run", "--json", env={"OPENAI_BASE_URL": other.url}).json() == {"handled": 1}
        assert with_pid_gone(pid, timeout=10)
        assert len(other.requests) == 1  # the turn ran here, with this shell's endpoint
        assert "served by agents run" in dcli.ok("history", "bob").out
    finally:
        other.stop()


def test_off_means_in_process(dcli: CLI, llm: FakeLLM):
    dcli.ok("send", "bob", "hi", env={"AGENTS_DAEMON": "0"})
    assert daemon_info(dcli) is None


def test_kill_9_of_the_daemon_loses_no_message(dcli: CLI, ws: Path, llm: FakeLLM):
    dcli.ok("send", "bob", "warm up")  # the daemon runs
    pid = daemon_info(dcli)["pid"]  # type: ignore[index]
    llm.script("bob", [text("too late", delay=30)])  # the next turn hangs in its model call
    sender = dcli.popen("send", "bob", "survive this", "--json", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    llm.wait_for_requests(2, timeout=30)  # the daemon is inside that turn
    os.kill(pid, signal.SIGKILL)
    out, err = sender.communicate(timeout=60)
    assert sender.returncode == 0, err
    answer = json.loads(out)
    assert answer["status"] == "ok" and answer["reply"] == "ok from bob"  # replayed by a new daemon
    new = daemon_info(dcli)
    assert new is not None and new["pid"] != pid
    lines = [json.loads(x) for x in (ws / ".agents" / "history" / "bob.jsonl").read_text().splitlines()]
    assert [e["content"] for e in lines if e.get("role") == "user"].count("survive this") == 1
