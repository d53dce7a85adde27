"""Memory blocks as a library: the store, what an agent sees, the rendering, and Letta's memory tools.

The tools are called through run_memory_tool (the validation and the edit a turn's tool call runs), and every
check looks at the files on disk afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from letta_cli.app.agents import new_agent
from letta_cli.core.errors import Conflict, InvalidFile, NotFound, ToolError
from letta_cli.core.models import AgentDef, Block
from letta_cli.engine.prompt import render_memory
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore, EditRefused
from letta_cli.store.workspace import Workspace
from letta_cli.tools.memory import MEMORY_TOOLS, run_memory_tool
from tests.conftest import REPO


@pytest.fixture
def workspace(ws: Path) -> Workspace:
    return Workspace(ws)


@pytest.fixture
def store(workspace: Workspace) -> BlockStore:
    return BlockStore(workspace)


def make_agent(workspace: Workspace, name: str, *, memory: dict[str, str] | None = None, shared=()) -> AgentDef:
    agent = new_agent(name, memory=memory, shared=list(shared))
    AgentStore(workspace).save(agent)
    return agent


def shared_block(store: BlockStore, label: str = "team", value: str = "", **kw) -> Block:
    return store.create(Block(label=label, value=value, **kw))


def tool(workspace: Workspace, agent: AgentDef, name: str, edit_key: str | None = None, **args) -> str:
    return run_memory_tool(workspace, agent, name, args, edit_key=edit_key)


def log_tools(store: BlockStore, label: str, owner: str | None = None) -> list[str]:
    return [e.tool for e in store.log(label, owner)]


@pytest.fixture
def alice(workspace: Workspace, store: BlockStore) -> AgentDef:
    """alice: a private `persona` block and the shared `team` block."""
    shared_block(store, "team", "Goal: ship v1", description="The team's notes", limit=200)
    return make_agent(workspace, "alice", memory={"persona": "I am Alice."}, shared=["team"])


# ------------------------------------------------------------------------------------------------ the store


def test_paths_follow_the_documented_layout(store: BlockStore, ws: Path):
    assert store.path("team") == ws / ".agents/blocks/shared/team.json"
    assert store.path("persona", "alice") == ws / ".agents/blocks/private/alice/persona.json"
    assert store.log_path("team") == ws / ".agents/blocks/shared/team.log.jsonl"


def test_create_get_and_the_file_on_disk(store: BlockStore):
    shared_block(store, "plan", "step 1", description="the plan", limit=50, read_only=True)
    data = json.loads(store.path("plan").read_text())
    assert data["label"] == "plan" and data["value"] == "step 1" and data["limit"] == 50
    assert data["read_only"] is True and data["owner"] is None and data["revision"] == 0 and data["version"] == 1
    assert store.get("plan").description == "the plan"
    assert store.exists("plan") and not store.exists("plan", "alice")
    assert log_tools(store, "plan") == ["create"]
    assert (store.path("plan").parent.parent.parent / ".gitignore").is_file()  # .agents/ set up


def test_create_twice_is_a_conflict_and_the_first_is_kept(store: BlockStore):
    shared_block(store, "plan", "first")
    with pytest.raises(Conflict, match="already exists"):
        shared_block(store, "plan", "second")
    assert store.get("plan").value == "first"


def test_create_past_the_limit_is_refused(store: BlockStore):
    with pytest.raises(EditRefused, match="2 over its limit of 3"):
        shared_block(store, "plan", "12345", limit=3)
    assert not store.exists("plan")


def test_unknown_block_suggests_close_labels(store: BlockStore):
    shared_block(store, "plans")
    with pytest.raises(NotFound, match="did you mean plans"):
        store.get("plan")


def test_corrupt_or_misplaced_block_files_name_the_file(store: BlockStore):
    shared_block(store, "plan")
    path = store.path("plan")
    path.write_text("{not json")
    with pytest.raises(InvalidFile, match=f"^{path}: invalid JSON"):
        store.get("plan")
    path.write_text(json.dumps({"label": "other"}))
    with pytest.raises(InvalidFile, match="does not match the file name"):
        store.get("plan")
    path.write_text(json.dumps({"label": "plan", "limit": 0}))
    with pytest.raises(InvalidFile, match=f"^{path}: limit"):
        store.get("plan")
    path.write_text(json.dumps({"label": "plan", "owner": "alice"}))
    with pytest.raises(InvalidFile, match="does not match its folder"):
        store.get("plan")


def test_edit_bumps_the_revision_and_logs_who_and_how_much(store: BlockStore):
    shared_block(store, "plan", "abc")
    block = store.edit("plan", None, lambda b: b.value + "def", actor="bob", tool="core_memory_append")
    assert (block.value, block.revision) == ("abcdef", 1)
    assert store.get("plan") == block
    entry = store.log("plan")[-1]
    assert (entry.actor, entry.tool, entry.revision) == ("bob", "core_memory_append", 1)
    assert (entry.before, entry.after) == (3, 6)


def test_delete_removes_the_block_and_its_log_unless_attached(workspace: Workspace, store: BlockStore, alice):
    with pytest.raises(Conflict, match="attached to alice"):
        store.delete("team")
    assert store.exists("team")
    assert store.delete("team", force=True) == ["alice"]
    assert not store.exists("team") and not store.log_path("team").exists()
    with pytest.raises(NotFound):
        store.delete("team")


# ------------------------------------------------------------------------------------------ what an agent sees


def test_private_blocks_are_created_from_the_definition_on_first_use(store: BlockStore, alice: AgentDef):
    assert not store.exists("persona", "alice")
    blocks = store.for_agent(alice)
    assert [(b.label, b.owner) for b in blocks] == [("persona", "alice"), ("team", None)]
    assert store.get("persona", "alice").value == "I am Alice."
    store.edit("persona", "alice", lambda b: "I am Alice, v2.", actor="alice", tool="memory_rethink")
    assert store.for_agent(alice)[0].value == "I am Alice, v2."  # the file is the state from now on
    assert log_tools(store, "persona", "alice") == ["create", "memory_rethink"]


def test_a_listed_shared_block_that_does_not_exist_names_agent_and_label(workspace: Workspace, store: BlockStore):
    bob = make_agent(workspace, "bob", shared=["missing"])
    with pytest.raises(NotFound, match="agent 'bob' lists shared block 'missing'"):
        store.for_agent(bob)


def test_one_label_twice_is_an_invalid_file_naming_both(workspace: Workspace, store: BlockStore):
    shared_block(store, "notes")
    carol = make_agent(workspace, "carol", memory={"notes": "mine"}, shared=["notes"])
    with pytest.raises(InvalidFile) as exc:
        store.for_agent(carol)
    message = str(exc.value)
    assert "two blocks labelled 'notes'" in message
    assert "carol.toml" in message and str(store.path("notes")) in message


def test_attach_refuses_a_label_clash_and_changes_no_agent(workspace: Workspace, store: BlockStore):
    shared_block(store, "notes")
    make_agent(workspace, "dave")
    make_agent(workspace, "carol", memory={"notes": "mine"})
    with pytest.raises(Conflict, match="agent 'carol' has a private block labelled 'notes'"):
        store.attach("notes", ["dave", "carol"])
    assert store.attached_agents("notes") == []
    assert store.attach("notes", ["dave", "dave"]) == ["dave"]
    assert store.attach("notes", ["dave"]) == []
    assert store.attached_agents("notes") == ["dave"]
    assert store.detach("notes", ["dave"]) == ["dave"] and store.attached_agents("notes") == []


# ------------------------------------------------------------------------------------------------ rendering


def test_render_shows_label_description_flags_size_and_value(store: BlockStore, alice: AgentDef):
    text = render_memory(store.for_agent(alice))
    assert text.startswith("<memory_blocks>") and text.endswith("</memory_blocks>")
    assert '<block label="persona" read_only="false">' in text and "</value>\n<chars>11/5000</chars>" in text
    assert '<block label="team" shared="true" read_only="false">' in text
    assert "<description>The team's notes</description>" in text
    assert "<value>\nGoal: ship v1\n</value>\n<chars>13/200</chars>\n</block>" in text
    # shared blocks first (the same text for every agent that holds them), then the agent's own
    assert text.index('<block label="team"') < text.index('<block label="persona"')
    assert render_memory([]) == ""


# ------------------------------------------------------------------------------------------------ the tools


def test_tool_schemas_have_lettas_names_and_parameters():
    expected = {
        "core_memory_append": (["label", "content"], ["label", "content"]),
        "core_memory_replace": (["label", "old_content", "new_content"], ["label", "old_content", "new_content"]),
        "memory_insert": (["label", "new_string", "insert_line"], ["label", "new_string"]),
        "memory_replace": (["label", "old_string", "new_string"], ["label", "old_string", "new_string"]),
        "memory_rethink": (["label", "new_memory"], ["label", "new_memory"]),
    }
    assert list(MEMORY_TOOLS) == list(expected)
    for name, (params, required) in expected.items():
        schema = MEMORY_TOOLS[name].schema
        assert schema["type"] == "function" and schema["function"]["name"] == name
        assert list(schema["function"]["parameters"]["properties"]) == params
        assert schema["function"]["parameters"]["required"] == required
        assert len(schema["function"]["description"]) < 120  # prompt tokens matter
    assert MEMORY_TOOLS["memory_insert"].parameters["properties"]["insert_line"]["type"] == "integer"


def test_core_memory_append(workspace, store, alice):
    result = tool(workspace, alice, "core_memory_append", label="team", content="Owner: Alice")
    assert "team" in result and "26/200" in result
    assert store.get("team").value == "Goal: ship v1\nOwner: Alice"
    assert store.log("team")[-1].actor == "alice"


def test_core_memory_append_to_an_empty_block_adds_no_blank_line(workspace, store):
    shared_block(store, "scratch")
    bob = make_agent(workspace, "bob", shared=["scratch"])
    tool(workspace, bob, "core_memory_append", label="scratch", content="first")
    assert store.get("scratch").value == "first"


def test_core_memory_replace_replaces_every_occurrence(workspace, store, alice):
    tool(workspace, alice, "core_memory_replace", label="persona", old_content="Alice", new_content="Al")
    assert store.get("persona", "alice").value == "I am Al."
    tool(workspace, alice, "memory_rethink", label="team", new_memory="a b a")
    tool(workspace, alice, "core_memory_replace", label="team", old_content="a", new_content="c")
    assert store.get("team").value == "c b c"


def test_core_memory_replace_errors(workspace, store, alice):
    with pytest.raises(ToolError, match="Old content 'Bob' not found in memory block 'persona'"):
        tool(workspace, alice, "core_memory_replace", label="persona", old_content="Bob", new_content="x")
    with pytest.raises(ToolError, match="must not be empty"):
        tool(workspace, alice, "core_memory_replace", label="persona", old_content="", new_content="x")


@pytest.mark.parametrize(
    "line, expected",
    [(0, "new\na\nb"), (1, "a\nnew\nb"), (2, "a\nb\nnew"), (-1, "a\nb\nnew"), (None, "a\nb\nnew")],
)
def test_memory_insert_is_line_based(workspace, store, alice, line, expected):
    tool(workspace, alice, "memory_rethink", label="team", new_memory="a\nb")
    args = {"label": "team", "new_string": "new"} | ({} if line is None else {"insert_line": line})
    run_memory_tool(workspace, alice, "memory_insert", args)
    assert store.get("team").value == expected


def test_memory_insert_out_of_range_and_into_an_empty_block(workspace, store, alice):
    with pytest.raises(ToolError, match=r"Invalid insert_line 5: .*\[0, 1\]"):
        tool(workspace, alice, "memory_insert", label="team", new_string="x", insert_line=5)
    with pytest.raises(ToolError, match="Invalid insert_line -2"):
        tool(workspace, alice, "memory_insert", label="team", new_string="x", insert_line=-2)
    tool(workspace, alice, "memory_rethink", label="team", new_memory="")
    tool(workspace, alice, "memory_insert", label="team", new_string="only line")
    assert store.get("team").value == "only line"


def test_memory_replace_needs_a_unique_match(workspace, store, alice):
    tool(workspace, alice, "memory_rethink", label="team", new_memory="- [ ] a\n- [ ] b")
    with pytest.raises(ToolError, match=r"occurs 2 times \(lines \[1, 2\]\)"):
        tool(workspace, alice, "memory_replace", label="team", old_string="- [ ]", new_string="- [x]")
    with pytest.raises(ToolError, match="does not appear verbatim"):
        tool(workspace, alice, "memory_replace", label="team", old_string="- [x] a", new_string="y")
    with pytest.raises(ToolError, match="must not be empty"):
        tool(workspace, alice, "memory_replace", label="team", old_string="", new_string="y")
    tool(workspace, alice, "memory_replace", label="team", old_string="- [ ] a", new_string="- [x] a")
    assert store.get("team").value == "- [x] a\n- [ ] b"
    tool(workspace, alice, "memory_replace", label="team", old_str="- [x] a\n", new_str="")  # Letta's old names
    assert store.get("team").value == "- [ ] b"


def test_memory_rethink_replaces_the_whole_value(workspace, store, alice):
    tool(workspace, alice, "memory_rethink", label="persona", new_memory="Completely new.")
    assert store.get("persona", "alice").value == "Completely new."


def test_failed_tool_calls_change_nothing(workspace, store, alice):
    before = store.path("team").read_bytes()
    with pytest.raises(ToolError):
        tool(workspace, alice, "memory_replace", label="team", old_string="nope", new_string="x")
    assert store.path("team").read_bytes() == before
    assert log_tools(store, "team") == ["create"]


def test_unknown_label_lists_the_agents_labels(workspace, alice):
    with pytest.raises(ToolError, match=r"no memory block labelled 'human' \(its blocks: persona, team\)"):
        tool(workspace, alice, "core_memory_append", label="human", content="x")


@pytest.mark.parametrize(
    "name, args, message",
    [
        ("core_memory_append", {"label": "team"}, "missing argument content"),
        ("core_memory_replace", {"label": "team"}, "missing arguments old_content, new_content"),
        ("core_memory_append", {"label": "team", "content": 5}, "'content' must be a string, got integer"),
        ("core_memory_append", {"label": None, "content": "x"}, "'label' must be a string, got null"),
        ("memory_insert", {"label": "team", "new_string": "x", "insert_line": "2"}, "must be an integer, got string"),
        ("memory_insert", {"label": "team", "new_string": "x", "insert_line": True}, "must be an integer, got boolean"),
        ("memory_insert", {"label": "team", "new_string": "x", "insert_line": 1.5}, "must be an integer, got number"),
        ("memory_rethink", {"label": "team", "new_memory": "x", "mood": "happy"}, "unexpected argument 'mood'"),
        ("memory_rethink", ["team", "x"], "must be a JSON object"),
        ("memory_delete", {"label": "team"}, "unknown memory tool 'memory_delete'"),
    ],
)
def test_bad_arguments_are_tool_errors(workspace, store, alice, name, args, message):
    with pytest.raises(ToolError, match=message):
        run_memory_tool(workspace, alice, name, args)
    assert store.get("team").revision == 0


def test_request_heartbeat_is_tolerated(workspace, store, alice):
    tool(workspace, alice, "core_memory_append", label="team", content="x", request_heartbeat=True)
    assert store.get("team").value.endswith("\nx")


@pytest.mark.parametrize("name", list(MEMORY_TOOLS))
def test_read_only_blocks_refuse_every_tool(workspace, store, name):
    shared_block(store, "rules", "Be kind.", read_only=True)
    bob = make_agent(workspace, "bob", shared=["rules"])
    args = {
        "core_memory_append": {"content": "x"},
        "core_memory_replace": {"old_content": "kind", "new_content": "x"},
        "memory_insert": {"new_string": "x"},
        "memory_replace": {"old_string": "kind", "new_string": "x"},
        "memory_rethink": {"new_memory": "x"},
    }[name]
    with pytest.raises(ToolError, match="Edit refused: block 'rules' is read-only"):
        run_memory_tool(workspace, bob, name, {"label": "rules", **args})
    assert store.get("rules").value == "Be kind." and store.get("rules").revision == 0


def test_private_read_only_block_from_the_definition(workspace, store):
    agent = AgentDef.model_validate(
        {"name": "erin", "memory": {"blocks": {"rules": {"value": "fixed", "read_only": True}}}}
    )
    AgentStore(workspace).save(agent)
    with pytest.raises(ToolError, match="read-only"):
        tool(workspace, agent, "memory_rethink", label="rules", new_memory="changed")
    assert store.get("rules", "erin").value == "fixed"


def test_an_edit_past_the_limit_is_refused_saying_by_how_much(workspace, store, alice):
    tool(workspace, alice, "memory_rethink", label="team", new_memory="x" * 200)  # exactly the limit: fine
    with pytest.raises(ToolError, match="would be 210 chars, 10 over its limit of 200; shorten"):
        tool(workspace, alice, "core_memory_append", label="team", content="123456789")
    assert len(store.get("team").value) == 200


def test_an_oversized_block_may_shrink_but_not_grow(workspace, store, alice):
    path = store.path("team")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "value": "y" * 150 + "z" * 150}))  # a person edited the file by hand
    with pytest.raises(ToolError, match="over its limit"):
        tool(workspace, alice, "core_memory_append", label="team", content="more")
    tool(workspace, alice, "memory_replace", label="team", old_string="z" * 150, new_string="")
    assert len(store.get("team").value) == 150


# ------------------------------------------------------------------------------------------- replayed calls


def test_a_replayed_tool_call_with_the_same_edit_key_is_a_no_op(workspace, store, alice):
    first = tool(workspace, alice, "core_memory_append", edit_key="turn1:call0", label="team", content="once")
    again = tool(workspace, alice, "core_memory_append", edit_key="turn1:call0", label="team", content="once")
    assert first == again
    block = store.get("team")
    assert block.value == "Goal: ship v1\nonce" and block.revision == 1
    assert log_tools(store, "team") == ["create", "core_memory_append"]
    tool(workspace, alice, "core_memory_append", edit_key="turn1:call1", label="team", content="twice")
    assert store.get("team").revision == 2


def test_edit_keys_are_kept_until_their_turn_is_committed(workspace, store, alice, ws: Path):
    """Not the last N edits: every key of a turn not yet committed stays (a replay needs them all)."""
    turn, other = "01a00000-0000-7000-8000-00000000000a", "01a00000-0000-7000-8000-00000000000b"
    for i in range(70):
        tool(workspace, alice, "memory_rethink", edit_key=f"{turn}:{i}:h", label="persona", new_memory=str(i))
    assert store.get("persona", "alice").recent_edit_keys == [f"{turn}:{i}:h" for i in range(70)]
    turns = ws / ".agents" / "turns"
    turns.mkdir(parents=True, exist_ok=True)
    (turns / f"{turn}.json").write_text("{}")  # committed: its keys are dropped at the next edit
    tool(workspace, alice, "memory_rethink", edit_key=f"{other}:0:h", label="persona", new_memory="x")
    assert store.get("persona", "alice").recent_edit_keys == [f"{other}:0:h"]


def test_a_crash_after_the_write_then_a_replay_applies_the_edit_once(workspace, store, alice, ws: Path):
    """The process dies right after writing the block (before the log); the turn is replayed."""
    script = (
        "import sys; from pathlib import Path; from letta_cli.store.workspace import Workspace;"
        "from letta_cli.store.agents import AgentStore;"
        "from letta_cli.tools.memory import run_memory_tool;"
        "ws = Workspace(Path(sys.argv[1])); agent = AgentStore(ws).get('alice');"
        "run_memory_tool(ws, agent, 'core_memory_append', {'label': 'team', 'content': 'once'}, edit_key='t:0')"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "LETTA_CLI_CRASH_AT": "after_block_write"}
    proc = subprocess.run([sys.executable, "-c", script, str(ws)], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    assert store.get("team").value == "Goal: ship v1\nonce"
    tool(workspace, alice, "core_memory_append", edit_key="t:0", label="team", content="once")
    assert store.get("team").value == "Goal: ship v1\nonce" and store.get("team").revision == 1


def test_a_crash_mid_write_leaves_the_old_block_whole(store, alice, ws: Path):
    script = (
        "import sys; from pathlib import Path; from letta_cli.store.workspace import Workspace;"
        "from letta_cli.store.blocks import BlockStore;"
        "BlockStore(Workspace(Path(sys.argv[1]))).edit('team', None, lambda b: 'half', actor='x', tool='t')"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "LETTA_CLI_CRASH_AT": "during_atomic_write"}
    proc = subprocess.run([sys.executable, "-c", script, str(ws)], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr
    block = store.get("team")
    assert block.value == "Goal: ship v1" and block.revision == 0
    assert [b.label for b in store.list_shared()] == ["team"]  # the stray temp file is not a block
    assert log_tools(store, "team") == ["create"]
