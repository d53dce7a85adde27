"""What the model sees, byte for byte: every built-in tool's schema, and the first request of a turn (system
prompt, messages, the tools narrowed for that agent, tool_choice) as the openai SDK sends it.

The snapshots in tests/data/snapshots/ change only on purpose: delete a file and run this test to write it anew
(the run fails once, to make the change visible), then commit it saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from letta_cli.tools.registry import builtin_tools
from tests.fakellm import FakeLLM, text
from tests.turnkit import small_workspace, turn

SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"


def sent(obj: object) -> str:
    """The bytes the SDK puts on the wire (openai's openapi_dumps: no key sorting, compact, UTF-8)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def check_snapshot(name: str, value: object) -> None:
    path = SNAPSHOTS / f"{name}.json"
    if not path.exists():
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        pytest.fail(f"snapshot {path} written; check it and commit it")
    # json.loads keeps key order, so the pretty file compares byte for byte in the form that is sent
    assert sent(value) == sent(json.loads(path.read_text(encoding="utf-8"))), f"{name}: what the model sees changed"


def test_builtin_tool_schemas():
    check_snapshot("builtin_tools", [tool.schema for tool in builtin_tools().values()])


@pytest.mark.parametrize("agent", ["alice", "bob"])
def test_first_request_of_a_turn(tmp_path: Path, llm: FakeLLM, agent: str):
    ws = small_workspace(tmp_path / "ws")
    llm.script(agent, [text("fine")])
    turn(ws, llm, agent, "What is the plan?")
    [body] = llm.requests
    check_snapshot(f"turn_{agent}", body)


def test_first_request_with_a_forced_tool(tmp_path: Path, llm: FakeLLM):
    ws = small_workspace(tmp_path / "ws")
    llm.script("alice", [text("fine")])
    turn(ws, llm, "alice", "Note it.", force_tool="core_memory_append")
    assert llm.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "core_memory_append"}}
    check_snapshot("turn_alice_forced", llm.requests[0]["tool_choice"])
