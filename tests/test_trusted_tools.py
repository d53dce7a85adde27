"""Letta's Python tools on explicit trust: `agents import --trust-tools` turns the customer_service reference
file's four custom tools into command tools (code in tools.d/, run in a separate Python process); without
the flag they stay disabled and their code is written nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from letta_cli.app.agentfile import import_source
from letta_cli.store.agents import AgentStore
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI, REPO, fails
from tests.fakellm import call, text, tool_results
from tests.turnkit import turn

CUSTOMER = REPO / "tests" / "data" / "agent-files" / "customer_service.af"
CUSTOM = ["terminate_chat", "escalate", "cancel_order", "check_order_status"]


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("agents: warning: ")]


def all_text(ws: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in ws.rglob("*") if p.is_file())


def test_without_trust_the_python_tools_stay_disabled_and_unwritten(offline_cli: CLI, ws: Path):
    res = offline_cli.ok("import", str(CUSTOMER))
    [line] = warnings(res.err)
    assert "cancel_order (custom)" in line and line.endswith("; to run their Python code, import with --trust-tools")
    agent = AgentStore(Workspace(ws)).get("customer_service")
    assert set(CUSTOM) <= set(agent.disabled_tools) and agent.command_tools == {}
    assert not (ws / "tools.d").exists() and "def cancel_order" not in all_text(ws)


def test_with_trust_they_become_command_tools_that_run(offline_cli: CLI, ws: Path):
    res = offline_cli.ok("import", str(CUSTOMER), "--trust-tools", "--json")
    data = res.json()
    assert data["command_tools"] == {"customer_service": CUSTOM}
    assert data["tool_files"] == [f"tools.d/{n}.py" for n in CUSTOM]
    lines = warnings(res.err)
    assert lines[0].startswith("agents: warning: the file's Python tools were taken as command tools (--trust-tools)")
    assert "customer_service: terminate_chat, escalate, cancel_order, check_order_status" in lines[0]
    assert lines[1].endswith("never run: customer_service: conversation_search")  # a Letta tool we lack
    agent = AgentStore(Workspace(ws)).get("customer_service")
    assert agent.disabled_tools == ["conversation_search"]
    assert set(agent.tools or []) == {"memory_replace", "memory_insert", *CUSTOM}
    spec = agent.command_tools["cancel_order"]
    assert spec.python == "tools.d/cancel_order.py" and spec.idempotent is False
    assert spec.arguments_schema()["required"] == ["order_number", "reason"]
    code = (ws / "tools.d" / "cancel_order.py").read_text()
    assert "def cancel_order(order_number: int, reason: str):" in code and "--trust-tools" in code
    # it runs, in a Python process of its own, with the arguments as JSON
    ran = offline_cli.ok("tools", "test", "cancel_order", '{"order_number": 7, "reason": "late"}', "--json").json()
    assert ran["output"] == "The order 7 could not be cancelled." and ran["source"] == "agents.d/customer_service.toml"
    fails(offline_cli("tools", "test", "cancel_order", '{"order_number": "7", "reason": "late"}'), 2, "integer")


def test_an_imported_agent_calls_its_python_tool_in_a_turn(ws: Path, llm):
    import_source(Workspace(ws), str(CUSTOMER), trust_tools=True)
    llm.script("customer_service", [call("check_order_status", order_number=42), text("It is on its way.")])
    record = turn(Workspace(ws), llm, "customer_service", "Where is order 42?")
    assert record.reply == ["It is on its way."]
    assert tool_results(llm.requests[1]) == ["Order 42 is currently processing."]
    offered = {t["function"]["name"]: t["function"] for t in llm.requests[0]["tools"]}
    assert offered["check_order_status"]["description"].startswith("Check the status for an order number")


def hostile(tmp_path: Path, **changes) -> Path:
    """customer_service.af with cancel_order's tool entry changed."""
    raw = json.loads(CUSTOMER.read_text())
    data = json.loads(raw) if isinstance(raw, str) else raw
    for tool in data["tools"]:
        if tool["name"] == "cancel_order":
            tool.update(changes)
    path = tmp_path / "changed.af"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"source_code": "def cancel_order(:\n"}, "cancel_order (its code does not parse as Python)"),
        ({"source_code": "import os\nos.system('echo pwned')\n"}, "cancel_order (its code defines no function"),
        ({"source_type": "javascript"}, "cancel_order (its code is javascript, not Python)"),
    ],
)
def test_code_that_cannot_be_a_tool_stays_disabled_with_its_reason(offline_cli, ws, tmp_path, changes, reason):
    res = offline_cli.ok("import", str(hostile(tmp_path, **changes)), "--trust-tools")
    disabled = next(line for line in warnings(res.err) if "disabled_tools" in line)
    assert reason in disabled
    assert not (ws / "tools.d" / "cancel_order.py").exists() and (ws / "tools.d" / "escalate.py").exists()


def test_a_tools_file_with_other_code_is_a_conflict_and_nothing_is_imported(offline_cli, ws):
    (ws / "tools.d").mkdir()
    (ws / "tools.d" / "escalate.py").write_text("# mine\n")
    fails(offline_cli("import", str(CUSTOMER), "--trust-tools"), 5, "tools.d/escalate.py exists with other contents")
    assert not (ws / "agents.d" / "customer_service.toml").exists()
    assert sorted(p.name for p in (ws / "tools.d").iterdir()) == ["escalate.py"]
    # with the conflict gone, a second import (under other names) reuses the identical files
    (ws / "tools.d" / "escalate.py").unlink()
    offline_cli.ok("import", str(CUSTOMER), "--trust-tools", "--prefix", "a-")
    before = {p.name: p.read_bytes() for p in (ws / "tools.d").iterdir()}
    offline_cli.ok("import", str(CUSTOMER), "--trust-tools", "--prefix", "b-")
    assert {p.name: p.read_bytes() for p in (ws / "tools.d").iterdir()} == before
    assert AgentStore(Workspace(ws)).get("b-customer_service").command_tools.keys() == set(CUSTOM)
