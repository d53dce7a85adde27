"""The exact bytes `agents export` writes and the exact files `agents import` leaves, pinned.

The expected files in tests/data/agentfile-pins/ were made by the code before the format got one definition;
a change to them must be deliberate. Only what truly varies is normalised: timestamps taken from the clock
during the test, ids drawn at random, the package version and the temporary folder.
Regenerate (after a deliberate change, and say why in the commit): UPDATE_PINS=1 pytest tests/test_agentfile_pins.py
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from letta_cli import __version__
from letta_cli.core.ids import now
from letta_cli.core.models import Block, HistoryEntry
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI, REPO

PINS = REPO / "tests" / "data" / "agentfile-pins"
REFERENCE = REPO / "tests" / "data" / "agent-files"

# a timestamp field, in a file or inside a JSON string holding a file (quotes escaped)
CLOCK = re.compile(r'(\\?")(?:created_at|at)\1: ?\1(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?(?:\+00:00|Z))\1')
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def pinned(name: str, actual: str) -> None:
    path = PINS / name
    if os.environ.get("UPDATE_PINS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == actual, f"{name} differs from the pinned output"


def normalise(text: str, since: datetime, root: Path | None = None) -> str:
    """Clock readings taken since `since` become <now> (their format is kept in the rest of the match);
    fixed timestamps from the test's own files stay as they are."""

    def clock(m: re.Match) -> str:
        at = datetime.fromisoformat(m[2].replace("Z", "+00:00"))
        return m[0].replace(m[2], "<now>") if at >= since else m[0]

    text = CLOCK.sub(clock, text)
    ids: dict[str, str] = {}
    text = UUID.sub(lambda m: ids.setdefault(m[0], f"<id-{len(ids)}>"), text)
    text = text.replace(f"letta-cli {__version__}", "letta-cli <version>")
    return text.replace(str(root), "<ws>") if root else text


def tree(root: Path, since: datetime) -> str:
    """Every file and folder under root, with the text of each file, as one JSON document."""
    files = {
        str(p.relative_to(root)) + ("/" if p.is_dir() else ""): None if p.is_dir() else p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
    }
    return normalise(json.dumps(files, ensure_ascii=False, indent=2) + "\n", since, root)


AT = [datetime.fromisoformat(t) for t in ("2025-03-04T05:06:07.123456+00:00", "2025-03-04T05:06:08+00:00")]


def team(root: Path) -> None:
    """A workspace using every field an export carries."""
    (root / "agents.toml").write_text(
        'version = 1\nmodel = "house-model"\nbase_url = "http://u:pw@127.0.0.1:1/v1?key=k"\n', encoding="utf-8"
    )
    (root / "agents.d" / "boss.toml").write_text(
        'version = 1\nname = "boss"\ndescription = "runs the team — für alle"\nmodel = "gpt-4o"\n'
        'base_url = "https://alice:hunter2@llm.example.org/v1?api_key=sk-1"\napi_key_env = "BOSS_KEY"\n'
        'temperature = 0.3\nsystem = "You are the boss.\\nBe brief."\ntags = ["team", "lead"]\n'
        'tools = ["send_message", "send_message_to_agents_matching_all_tags", "core_memory_append", "web_fetch"]\n'
        'disabled_tools = ["web_search"]\n'
        '[tool_rules]\nfirst = "core_memory_append"\nterminal = ["send_message", "core_memory_append"]\n'
        "[limits]\nmax_steps = 4\nwait_timeout = 2.5\n"
        '[memory]\nshared = ["plan", "notes"]\n'
        '[memory.blocks.persona]\nvalue = "I decide."\nlimit = 300\ndescription = "who I am"\nread_only = true\n',
        encoding="utf-8",
    )
    (root / "agents.d" / "worker.toml").write_text(
        'version = 1\nname = "worker"\ntemperature = 0.0\ntags = ["team"]\n'
        'tools = ["send_message", "memory_rethink", "memory_insert"]\n[tool_rules]\nterminal = []\n'
        '[memory]\nshared = ["plan"]\n[memory.blocks.persona]\nvalue = "I do."\n'
        '[memory.blocks.scratch]\nvalue = ""\nlimit = 50\n',
        encoding="utf-8",
    )
    (root / "agents.d" / "solo.toml").write_text('version = 1\nname = "solo"\n', encoding="utf-8")
    ws = Workspace(root)
    store = BlockStore(ws)
    store.create(Block(label="plan", value="1. plan\n2. do", limit=800, description="the plan", metadata={"k": "v"}))
    store.create(Block(label="notes", value="only the boss reads this", read_only=True))
    store.for_agent(AgentStore(ws).get("worker"))  # the worker's private blocks now have files
    store.edit("persona", "worker", lambda b: "I learned.", actor="worker", tool="memory_rethink")
    call = {"id": "call-1", "type": "function", "function": {"name": "core_memory_append", "arguments": '{"a": 1}'}}
    lines = [
        HistoryEntry(turn_id="t1", seq=0, role="user", content="hi", sender="user", created_at=AT[0]),
        HistoryEntry(turn_id="t1", seq=1, role="assistant", tool_calls=[call], created_at=AT[0]),
        HistoryEntry(turn_id="t1", seq=2, role="tool", content="ok", tool_call_id="call-1", name="x", created_at=AT[1]),
        HistoryEntry(turn_id="t1", seq=3, role="assistant", content="done", created_at=AT[1]),
    ]
    text = "".join(e.model_dump_json(exclude_none=True) + "\n" for e in lines)
    (root / ".agents" / "history").mkdir()
    (root / ".agents" / "history" / "boss.jsonl").write_text(text + '{"broken": true}\n', encoding="utf-8")


@pytest.fixture
def since() -> datetime:
    return now()


def test_export_output_is_pinned(offline_cli: CLI, ws: Path, since: datetime):
    team(ws)
    res = offline_cli.ok("export", "boss", "worker", "solo")
    assert res.err == ""
    pinned("export.af", normalise(res.out, since))


def test_export_with_history_output_is_pinned(offline_cli: CLI, ws: Path, tmp_path: Path, since: datetime):
    team(ws)
    out = tmp_path / "team.af"
    res = offline_cli.ok("export", "boss", "worker", "solo", "solo", "--with-history", "-o", str(out), "--json")
    assert res.err == ""
    pinned("export-with-history.af", normalise(out.read_text(encoding="utf-8"), since))
    pinned("export-with-history.summary.json", normalise(res.out, since, tmp_path))


def test_import_of_the_reference_files_is_pinned(offline_cli: CLI, ws: Path, since: datetime):
    outputs = []
    for name in ("memgpt_agent.af", "customer_service.af"):
        res = offline_cli.ok("import", str(REFERENCE / name), "--with-history", "--json")
        outputs += [res.out, res.err]
    pinned("import-reference.output.txt", normalise("".join(outputs), since, ws))
    pinned("import-reference.tree.json", tree(ws, since))


def test_import_of_an_exported_team_is_pinned(offline_cli: CLI, ws: Path, tmp_path: Path, since: datetime):
    """Our own export with history: shared blocks, private blocks, rules, limits and history lines."""
    source = tmp_path / "team.af"
    source.write_text((PINS / "export-with-history.af").read_text(encoding="utf-8").replace("<now>", since.isoformat()))
    res = offline_cli.ok(
        "import", str(source), "--with-history", "--prefix", "copy-", "--rename", "solo=alone", "--trust-endpoints"
    )
    pinned("import-team.output.txt", normalise(res.out + res.err, since, ws))
    pinned("import-team.tree.json", tree(ws, since))
