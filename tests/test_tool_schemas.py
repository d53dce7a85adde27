"""What the model sees, byte for byte: every built-in tool's schema, and the first request of a turn (system
prompt, messages, the tools narrowed for that agent, tool_choice) as the openai SDK sends it. And the other kind
of tool: one whose parameters are given as plain JSON schema validates with the same rules and texts.

The snapshots in tests/data/snapshots/ change only on purpose: delete a file and run this test to write it anew
(the run fails once, to make the change visible), then commit it saying why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from letta_cli.core.errors import ToolError
from letta_cli.tools.base import Tool, parameters_of
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


# ------------------------------------------------------------------------ a tool given as plain JSON schema

GREP = {
    "type": "object",
    "properties": {
        "pattern": {"type": "string", "description": "What to look for."},
        "max-count": {"type": "integer", "description": "Stop after this many matches."},
        "paths": {"type": "array", "items": {"type": "string"}},
        "ignore_case": {"type": "boolean"},
    },
    "required": ["pattern"],
}


async def _grep(ctx, args) -> str:
    return json.dumps(args.model_dump(by_alias=True, exclude_unset=True))


def grep_tool() -> Tool:
    return Tool.from_json_schema("grep", "Search files.", GREP, _grep)


def test_a_json_schema_tool_sends_its_schema_as_given():
    assert grep_tool().schema == {
        "type": "function",
        "function": {"name": "grep", "description": "Search files.", "parameters": GREP},
    }


def test_a_json_schema_tool_validates_like_a_typed_one():
    tool = grep_tool()
    args = tool.validate('{"pattern": "x", "max-count": 2, "paths": ["a"], "request_heartbeat": true}')
    assert args.model_dump(by_alias=True, exclude_unset=True) == {"pattern": "x", "max-count": 2, "paths": ["a"]}
    for raw, error in [
        ("{}", "grep: missing argument pattern"),
        ('{"pattern": 1}', "grep: argument 'pattern' must be a string, got integer"),
        ('{"pattern": "x", "max-count": "2"}', "grep: argument 'max-count' must be an integer, got string"),
        ('{"pattern": "x", "paths": [1]}', "grep: argument 'paths' must be a list of strings; item 0 is integer"),
        ('{"pattern": "x", "ignore_case": 1}', "grep: argument 'ignore_case' must be a boolean, got integer"),
        ('{"pattern": "x", "color": true}', "grep: unexpected argument 'color'; it takes pattern, max-count, paths"),
        ("[]", "grep: the arguments must be a JSON object"),
        ("{", "grep: the arguments are not valid JSON ("),
    ]:
        with pytest.raises(ToolError) as exc:
            tool.validate(raw)
        assert str(exc.value).startswith(error), (raw, str(exc.value))


def test_typed_tools_derive_their_schema_from_their_arguments_model():
    for tool in builtin_tools().values():
        assert tool.parameters == parameters_of(tool.arguments)
        assert tool.schema["function"]["parameters"] is tool.parameters
