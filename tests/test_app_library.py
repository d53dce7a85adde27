"""Every command as a library call: send, broadcast, tag, edit and a block append work from Python, return
typed results, and the CLI only renders them. The model is the scripted server over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from letta_cli.app import agents, blocks, messaging
from letta_cli.app.progress import Progress, event_line
from letta_cli.core.errors import InvalidFile, NotFound, UsageError
from letta_cli.core.models import Message
from letta_cli.core.text import clip, escape_newlines, flatten, shorten
from letta_cli.store.agents import AgentStore
from letta_cli.store.workspace import Workspace
from letta_cli.tools.memory import run_memory_tool
from tests.conftest import REPO
from tests.fakellm import error, text


@pytest.fixture
def lib_ws(ws: Path, llm) -> Workspace:
    """A workspace whose agents.toml points at the scripted server (no environment needed)."""
    (ws / "agents.toml").write_text(
        f'version = 1\nmodel = "fake-model"\nbase_url = "{llm.url}"\n'
        "[limits]\nretry_backoff = 0.05\nmodel_retries = 2\nmodel_timeout = 2\n"
    )
    workspace = Workspace(ws.resolve())
    for name, tags in {"w1": ["worker"], "w2": ["worker"], "boss": ["lead"]}.items():
        agents.create(workspace, agents.new_agent(name, tags=tags))
    return workspace


def test_send_from_python(lib_ws, llm):
    llm.script("w1", [text("hello back")])
    result = messaging.send(lib_ws, "w1", "hello")
    assert result.ok and result.reply == "hello back" and result.failure is None
    shown = result.as_json()
    assert (shown["agent"], shown["reply"], shown["status"]) == ("w1", "hello back", "ok")
    assert shown["usage"]["total_tokens"] > 0


def test_broadcast_from_python_answered_and_failed(lib_ws, llm):
    llm.script("w1", [text("one")])
    llm.script("w2", [text("two")])
    result = messaging.broadcast(lib_ws, ["worker"], "report")
    assert result.outcome == "answered" and result.timed_out is None
    assert result.rows() == [
        {"agent": "w1", "reply": "one", "error": None},
        {"agent": "w2", "reply": "two", "error": None},
    ]

    llm.script("w1", [text("fine")])
    llm.script("w2", [error(400)])
    result = messaging.broadcast(lib_ws, ["worker"], "again")
    assert result.outcome == "failed"
    failed = {r.agent: r for r in result.replies}["w2"]
    assert failed.reply == "" and "400" in (failed.error or "")


def test_broadcast_targets_exclude_the_sender_and_say_when_none_match(lib_ws):
    assert messaging.broadcast_targets(lib_ws, ["worker"], "w1") == ["w2"]
    with pytest.raises(NotFound):
        messaging.broadcast_targets(lib_ws, ["lead"], "boss")
    with pytest.raises(UsageError):
        messaging.broadcast_targets(lib_ws, [])


def test_tag_goes_through_the_store_and_skips_unchanged_files(lib_ws):
    path = lib_ws.agent_file("w1")
    agent = agents.tag(lib_ws, "w1", add=["senior", "senior"], remove=["worker"])
    assert agent.tags == ["senior"] and AgentStore(lib_ws).get("w1").tags == ["senior"]
    before = path.stat().st_mtime_ns
    agents.tag(lib_ws, "w1", add=["senior"])
    assert path.stat().st_mtime_ns == before
    with pytest.raises(UsageError, match="invalid tag"):
        agents.tag(lib_ws, "w1", add=["Not A Tag"])


def test_an_edit_is_saved_only_if_valid(lib_ws):
    path = lib_ws.agent_file("w1")
    original = path.read_bytes()
    with agents.edit(lib_ws, "w1") as draft:
        assert draft.path != path and draft.path.read_bytes() == original
        assert draft.save() == "unchanged"
        draft.path.write_text('version = 1\nname = "w1"\ndescription = 3\n')
        with pytest.raises(InvalidFile, match="the edit is invalid"):
            draft.save()
        assert path.read_bytes() == original
        draft.path.write_text('# kept as typed\nversion = 1\nname = "w1"\ndescription = "edited"\n')
        assert draft.save() == "saved"
    assert path.read_text().startswith("# kept as typed") and not draft.path.exists()


def test_a_person_and_the_memory_tool_append_the_same_way(lib_ws):
    blocks.create(lib_ws, "log", "first")
    blocks.append(lib_ws, "log", "by a person")
    AgentStore(lib_ws).save(agents.new_agent("w1", shared=["log"]), overwrite=True)
    run_memory_tool(lib_ws, AgentStore(lib_ws).get("w1"), "core_memory_append", {"label": "log", "content": "by w1"})
    assert blocks.get(lib_ws, "log").value == "first\nby a person\nby w1"
    assert [e.tool for e in blocks.log(lib_ws, "log")] == ["create", "append", "core_memory_append"]


def test_progress_tracks_turns_without_drawing_anything(tmp_path):
    ws = Workspace(tmp_path)
    sent = [Message(recipient="w1", body="go"), Message(recipient="w2", body="go")]
    lines: list[str] = []
    progress = Progress(ws, sent, on_line=lines.append)
    progress.start()  # no trace yet: nothing to read
    assert progress.headline() == "waiting for w1, w2… · 0/2 answered"
    chain = sent[0].chain_id
    progress.on_event({"event": "turn_start", "message_id": sent[0].id, "chain_id": chain, "agent": "w1"})
    progress.on_event({"event": "turn_start", "message_id": "elsewhere", "chain_id": "another chain", "agent": "x"})
    assert progress.headline().startswith("working: w1 0.")
    end = {"event": "turn_end", "message_id": sent[0].id, "chain_id": chain, "agent": "w1", "status": "ok"}
    progress.on_event(end)
    assert progress.answered == {sent[0].id} and progress.headline().endswith("1/2 answered")
    assert [line.split()[1] for line in lines] == ["turn_start", "turn_end"]
    assert event_line({"event": "unknown"}) is None


def test_the_text_cutters():
    assert clip("abcdef", 3) == "abc... [3 more chars]" and clip(None, 3) is None and clip("abc", 3) == "abc"
    assert clip("abcdef", 3, "more chars cut") == "abc... [3 more chars cut]"
    assert shorten("abcdef", 3) == "abc..." and shorten("abc", 3) == "abc"
    assert flatten(" a \n\t b ", 80) == "a b" and flatten("abcdef", 4) == "abc…" and flatten(None) == ""
    assert escape_newlines("a\nb\rc") == "a\\nb\\rc"


def test_status_and_inspection_never_load_the_engine():
    code = (
        "import sys; import letta_cli.app.status, letta_cli.app.queue_view, letta_cli.app.trace_view, "
        "letta_cli.app.usage, letta_cli.app.history_view; "
        "print(sorted(m for m in sys.modules if m.startswith(('letta_cli.engine', 'letta_cli.model', 'openai'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
