"""The demo end to end on the fake model: every step runs the real `agents` command, and checks in the trace
what the model did, saying so plainly when it did not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, base_env
from tests.fakellm import FakeLLM, call, text

BROADCAST = "send_message_to_agents_matching_all_tags"
WAIT = "send_message_to_agent_and_wait_for_reply"
ASYNC = "send_message_to_agent_async"


def forced(body: dict) -> str | None:
    choice = body.get("tool_choice")
    return choice["function"]["name"] if isinstance(choice, dict) else None


def obliging(async_target: str):
    def answer(body: dict):
        name = forced(body)
        if name == BROADCAST:
            return call(BROADCAST, tags=["worker"], message="What do you bring?")
        if name == WAIT:
            return call(WAIT, other_agent_id="worker-2", message="What do you bring?")
        if name == ASYNC:
            return call(ASYNC, other_agent_id=async_target, message="I bring games.")
        if name == "core_memory_append":
            return call("core_memory_append", label="team", content="worker-2 brings lemonade.")
        return text("I bring something nice.")

    return answer


def run_demo(tmp_path: Path, llm: FakeLLM) -> subprocess.CompletedProcess:
    # with the scheduler daemon on, as in a user's shell (the demo stops it at the end)
    env = {**base_env(tmp_path), "OPENAI_BASE_URL": llm.url, "OPENAI_API_KEY": "sk-test-fake", "AGENTS_DAEMON": "1"}
    argv = [sys.executable, "-m", "letta_cli", "demo", "--dir", str(tmp_path / "demo"), "--model", "fake-model"]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_every_step_is_checked_and_passes_with_an_obliging_model(tmp_path: Path, llm: FakeLLM):
    llm.default = obliging("supervisor")
    res = run_demo(tmp_path, llm)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for done in (
        "ok: all 3 workers answered",
        f"ok: the supervisor's {BROADCAST} collected 3 replies",
        "ok: worker-1 waited for worker-2's reply",
        "ok: worker-2's note is a new revision of 'team', in the supervisor's prompt",
        "ok: worker-3's message reached the supervisor",
        "ok: no HTML entity in any of",
    ):
        assert done in out, done
    assert "checks passed" in out and "6 of 6 checks passed" in out and "NOT DONE" not in out
    assert "worker-2 brings lemonade." in out  # `agents memory supervisor` shows worker-2's note
    assert "\n$ agents broadcast --tags worker 'What do you bring to the picnic?'\n" in out  # echoed as typed
    assert "--json" not in out  # what is echoed is what is printed


def test_a_step_the_model_gets_wrong_is_said_plainly(tmp_path: Path, llm: FakeLLM):
    llm.default = obliging("worker-1")
    res = run_demo(tmp_path, llm)
    assert res.returncode == 0, res.stderr
    assert "NOT DONE: the small model sent worker-3's message to worker-1, not the supervisor" in res.stdout
    assert "5 of 6 checks passed" in res.stdout


def test_echoed_commands_fit_the_width_and_can_be_typed_as_shown():
    import shlex

    from letta_cli.app.demo import command_lines

    system = "You supervise a picnic team. Sum up what the workers say in one short sentence."
    argv = ["agents", "create", "supervisor", "-t", "supervisor", "--tools", BROADCAST, "--system", system]
    shown = command_lines(argv, 100)
    assert all(len(line) <= 100 for line in shown.splitlines()) and shown.count("\\\n") == 1
    assert "--system 'You supervise" in shown  # an option stays with its value
    assert shlex.split(shown.removeprefix("$ ").replace("\\\n", "")) == argv
    narrow = command_lines(argv, 60)  # a value too long for a line of its own goes on the line after its option
    assert "--system \\\n    'You supervise" in narrow and shlex.split(narrow[2:].replace("\\\n", "")) == argv
    assert command_lines(["agents", "list"], 100) == "$ agents list"
