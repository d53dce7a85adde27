"""Memory blocks through real turns: the scripted model calls the memory tools, the next requests show it.

Needs the turn engine (`agents send NAME MESSAGE`) and the fake model server.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CLI
from tests.fakellm import FakeLLM, call, text, tool_results


def system_prompt(body: dict) -> str:
    """What the system messages at the start say (the agent's prompt, then its memory blocks)."""
    system = [m["content"] for m in body["messages"][:2] if m["role"] == "system"]
    return "\n\n".join(system)


def test_shared_block_edited_by_agent_a_appears_in_agent_b_next_request(cli: CLI, llm: FakeLLM):
    cli.ok("blocks", "create", "team", "--value", "Goal: ship v1")
    cli.ok("create", "a", "--shared", "team")
    cli.ok("create", "b", "--shared", "team")
    llm.script("a", [call("core_memory_append", label="team", content="X-from-a"), text("done")])
    cli.ok("send", "a", "note something")
    first, second = llm.requests_for("a")[-2:]
    assert "X-from-a" not in system_prompt(first)
    assert "X-from-a" in system_prompt(second)  # re-rendered for the very next model call
    assert "Goal: ship v1\nX-from-a" in cli.ok("blocks", "show", "team", "--json").json()["value"]

    cli.ok("send", "b", "hi")
    assert "X-from-a" in system_prompt(llm.requests_for("b")[-1])
    assert [e["actor"] for e in cli.ok("blocks", "log", "team", "--json").json()] == ["cli", "a"]


def test_a_tool_error_goes_back_to_the_model_and_the_turn_continues(cli: CLI, llm: FakeLLM, ws: Path):
    cli.ok("blocks", "create", "rules", "--value", "Be kind.", "--read-only")
    cli.ok("create", "a", "--shared", "rules", "--memory", "notes=")
    llm.script(
        "a",
        [
            call("core_memory_append", label="rules", content="Be mean."),
            call("memory_replace", label="nope", old_string="x", new_string="y"),
            call("core_memory_append", label="notes", content="x" * 6000),
            call("memory_rethink", label="notes", new_memory="kept"),
            text("done"),
        ],
    )
    cli.ok("send", "a", "try")
    results = [tool_results(body) for body in llm.requests_for("a")[1:5]]
    assert "read-only" in results[0][-1]
    assert "no memory block labelled 'nope'" in results[1][-1] and "notes, rules" in results[1][-1]
    assert "1000 over its limit of 5000" in results[2][-1]
    assert "updated" in results[3][-1]
    assert json.loads((ws / ".agents/blocks/shared/rules.json").read_text())["value"] == "Be kind."
    assert json.loads((ws / ".agents/blocks/private/a/notes.json").read_text())["value"] == "kept"
