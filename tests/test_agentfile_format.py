"""The agent file format has one definition: import reads the models export fills.

In-process library calls (no CLI): what `agents import` and `agents export` do, as Python functions.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from letta_cli.app.agentfile import (
    dump_agent_file,
    export_agents,
    export_to,
    import_source,
    parse_agent_file,
    read_source,
)
from letta_cli.core.errors import Conflict, UsageError
from letta_cli.core.models import HistoryEntry
from letta_cli.store.agents import AgentStore
from letta_cli.store.workspace import Workspace
from tests.test_agentfile import MEMGPT, agent, block, doc, letta_tool
from tests.test_agentfile_pins import team


def test_what_export_writes_reads_back_to_the_same_bytes(ws: Path):
    team(ws)
    text = dump_agent_file(export_agents(Workspace(ws), ["boss", "worker", "solo"], with_history=True))
    again = parse_agent_file(text.encode(), "team.af")
    assert dump_agent_file(again) == text
    assert [m.role for m in again.agents[0].messages or []] == ["system", "user", "assistant", "tool", "assistant"]


def test_fields_we_never_read_may_hold_anything(ws: Path):
    """Letta changes its fields between releases (secrets became a list); what we only write never refuses a file."""
    odd = {
        "agent_type": 5,
        "secrets": [{"key": "K", "value": "v"}],
        "tool_exec_environment_variables": None,
        "source_ids": None,
        "include_base_tools": "yes",
        "in_context_message_ids": "all",
        "llm_config": {"model": "m", "context_window": "big"},
        "tool_rules": [{"tool_name": "send_message", "type": "exit_loop", "prompt_template": 3}],
        "messages": [{"type": 1, "id": 2, "agent_id": None, "role": "user", "content": "hi"}],
    }
    blocks = [block("block-0", "persona", is_template="no", template_name=7, preserve_on_migration=None)]
    tools = [letta_tool("tool-0", "send_message", description=None, tags="core", return_char_limit="lots")]
    data = doc([agent("agent-0", "a", block_ids=["block-0"], tool_ids=["tool-0"], **odd)], blocks, tools)
    data["created_at"] = None
    path = ws.parent / "odd.af"
    path.write_text(json.dumps(data))
    result = import_source(Workspace(ws), str(path), with_history=True)
    imported = AgentStore(Workspace(ws)).get("a")
    assert (imported.model, imported.tools, imported.tool_rules.terminal) == ("m", ["send_message"], ["send_message"])
    assert [e.content for e in result.plan.histories["a"]] == ["hi"]


def test_import_and_export_are_library_calls(ws: Path, tmp_path: Path):
    result = import_source(Workspace(ws), str(MEMGPT), renames=["memgpt_agent=sam"])
    assert [a.name for a in result.plan.agents] == ["sam"] and result.paths["sam"].is_file()
    out = tmp_path / "sam.af"
    summary = export_to(Workspace(ws), ["sam"], out)
    assert summary.to_json() == {"file": str(out), "agents": ["sam"], "blocks": 2, "tools": 2, "messages": 1}
    assert read_source(str(out)).agents[0].name == "sam"
    with pytest.raises(Conflict, match="--force"):
        export_to(Workspace(ws), ["sam"], out)
    export_to(Workspace(ws), ["sam"], out, force=True)
    with pytest.raises(UsageError, match="OLD=NEW"):
        import_source(Workspace(ws), str(MEMGPT), renames=["nonsense"])


def test_a_hand_edited_tool_call_still_exports(ws: Path):
    (ws / "agents.d" / "a.toml").write_text('version = 1\nname = "a"\n')
    odd = [{"type": "function"}, {"id": "c2", "function": {"name": "x", "arguments": {"k": 1}, "extra": True}}]
    line = HistoryEntry(turn_id="t", seq=0, role="assistant", tool_calls=odd).model_dump_json()
    (ws / ".agents" / "history").mkdir(parents=True)
    (ws / ".agents" / "history" / "a.jsonl").write_text(line + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no serializer warning either
        text = dump_agent_file(export_agents(Workspace(ws), ["a"], with_history=True))
    calls = json.loads(text)["agents"][0]["messages"][1]["tool_calls"]
    assert calls == [
        {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        {"id": "c2", "type": "function", "function": {"name": "x", "arguments": '{"k": 1}'}},
    ]
