"""The project end to end on the real local model: `agents send` → scheduler → openai SDK → llama.cpp server
(started on demand because the workspace says model = "local") → a real tool call executed → a real answer."""

from __future__ import annotations

import json

import pytest

from letta_cli.model import local as localmodel
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI, base_env

pytest.importorskip("llama_cpp", reason="the local-model extra is not installed")


@pytest.fixture
def local_cli(ws, tmp_path):
    (ws / "agents.toml").write_text(
        'model = "local"\n[limits]\nmax_tokens = 40\nmax_steps = 3\nhistory_messages = 4\nmodel_timeout = 300\n'
    )
    yield CLI(ws, base_env(tmp_path))
    localmodel.stop(Workspace(ws))


def test_a_real_completion_through_agents_send(local_cli, ws):
    local_cli.ok("create", "chatty", "--tools", "none")
    data = local_cli.ok("send", "chatty", "Say hello to the team.", "--json", timeout=600).json()
    assert data["status"] == "ok" and data["reply"].strip() and data["usage"]["completion_tokens"] > 0


def test_a_real_tool_call_and_a_real_answer_through_agents_send(local_cli, ws):
    local_cli.ok("create", "scribe", "--memory", "notes=Shopping list:", "--tools", "core_memory_append")
    res = local_cli.ok(
        "send", "scribe", "--tool", "core_memory_append", "Remember that we need milk.", "--json", timeout=600
    )
    data = res.json()
    assert data["status"] == "ok" and data["usage"]["model_calls"] >= 2 and data["usage"]["prompt_tokens"] > 0

    block = json.loads((ws / ".agents" / "blocks" / "private" / "scribe" / "notes.json").read_text())
    assert block["revision"] >= 1 and block["value"].startswith("Shopping list:")  # the model's append landed
    events = [json.loads(line) for line in (ws / ".agents" / "trace.jsonl").read_text().splitlines()]
    calls = [e for e in events if e["event"] == "tool_call"]
    assert calls and calls[0]["tool"] == "core_memory_append" and calls[0]["error"] is False  # the forced call ran

    history = [json.loads(line) for line in (ws / ".agents" / "history" / "scribe.jsonl").read_text().splitlines()]
    assert [h["role"] for h in history][:3] == ["user", "assistant", "tool"]
    assert history[-1]["role"] == "assistant"  # the turn ended with the model's own answer
    assert localmodel.status(Workspace(ws)) is not None  # started on demand, recorded in the workspace
