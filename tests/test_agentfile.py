"""Agent Files (.af): `agents import` and `agents export`, compatible with Letta's files.

The two reference files are real Letta exports; the rest are built here. Every failing import must leave the
workspace byte-for-byte as it was.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from letta_cli.app.agentfile import import_agent_file, normalise_name, parse_agent_file, strip_credentials
from letta_cli.core.errors import StorageError
from letta_cli.core.models import AgentDef, Block, HistoryEntry
from letta_cli.store.agents import AgentStore, dump_agent
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI, REPO, Result, fails

REFERENCE = REPO / "tests" / "data" / "agent-files"
MEMGPT = REFERENCE / "memgpt_agent.af"
CUSTOMER = REFERENCE / "customer_service.af"

# ------------------------------------------------------------------------------------------------ helpers


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for a folder): equal snapshots mean nothing changed."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def warnings(res: Result) -> list[str]:
    return [line for line in res.err.splitlines() if line.startswith("agents: warning: ")]


def block(id: str, label: str, value: str = "", **extra) -> dict:
    return {"id": id, "label": label, "value": value, "limit": 5000, "description": f"the {label}", **extra}


def agent(id: str, name: str, **extra) -> dict:
    return {
        "id": id,
        "name": name,
        "system": f"You are {name}.",
        "description": "",
        "tags": [],
        "block_ids": [],
        "tool_ids": [],
        "tool_rules": [],
        "llm_config": {
            "model": "gpt-4o-mini",
            "model_endpoint_type": "openai",
            "model_endpoint": "https://api.openai.com/v1",
            "context_window": 32000,
            "temperature": 0.7,
        },
        "messages": [],
        **extra,
    }


def letta_tool(id: str, name: str, tool_type: str = "letta_core", **extra) -> dict:
    return {"id": id, "name": name, "tool_type": tool_type, "source_code": None, "json_schema": {"name": name}, **extra}


def doc(agents: list[dict], blocks: list[dict] | None = None, tools: list[dict] | None = None, **extra) -> dict:
    return {
        "agents": agents,
        "groups": [],
        "blocks": blocks or [],
        "files": [],
        "sources": [],
        "tools": tools or [],
        "mcp_servers": [],
        "metadata": {},
        "created_at": "2025-11-21T03:05:34+00:00",
        **extra,
    }


def write_af(path: Path, data: object, *, twice: bool = False) -> Path:
    text = json.dumps(data)
    path.write_text(json.dumps(text) if twice else text, encoding="utf-8")
    return path


def team(tmp_path: Path) -> Path:
    """Two agents sharing a block, each with a private one, built-in and custom tools, and tool rules."""
    data = doc(
        [
            agent(
                "agent-0",
                "Research Lead",
                tags=["team", "Lead Role"],
                block_ids=["block-0", "block-1"],
                tool_ids=["tool-0", "tool-1", "tool-2"],
                tool_rules=[
                    {"tool_name": "send_message", "type": "exit_loop"},
                    {"tool_name": "core_memory_append", "type": "run_first"},
                    {"tool_name": "send_message", "type": "max_count_per_step", "max_count_limit": 2},
                ],
            ),
            agent("agent-1", "worker", tags=["team"], block_ids=["block-0", "block-2"], tool_ids=["tool-0", "tool-3"]),
        ],
        blocks=[
            block("block-0", "plan", "1. read"),
            block("block-1", "persona", "I lead", read_only=True),
            block("block-2", "persona", "I work"),
        ],
        tools=[
            letta_tool("tool-0", "send_message"),
            letta_tool("tool-1", "core_memory_append", "letta_memory_core"),
            letta_tool("tool-2", "lookup", "custom", source_code="def lookup(q):\n    import os\n    os.system(q)\n"),
            letta_tool("tool-3", "archival_memory_search"),
        ],
    )
    return write_af(tmp_path / "team.af", data)


# ------------------------------------------------------------------------------------- Letta's own files


def test_memgpt_reference_file_imports(offline_cli: CLI, ws: Path):
    res = offline_cli.ok("import", str(MEMGPT))
    assert "Imported agent memgpt_agent" in res.out
    agent = AgentStore(Workspace(ws)).get("memgpt_agent")
    assert agent.description == "A simple MemGPT agent from the original project release"
    assert agent.system.startswith("<base_instructions>")
    assert (agent.model, agent.base_url, agent.temperature) == ("gpt-4o-mini", None, 0.7)
    assert agent.tools == ["memory_replace", "memory_insert"]
    assert agent.disabled_tools == ["conversation_search"]
    assert set(agent.memory.blocks) == {"human", "persona"} and agent.memory.shared == []
    human = agent.memory.blocks["human"]
    assert (
        "First name: Chad" in human.value and human.limit == 20000 and human.description.startswith("The human block")
    )
    # one warning line naming the tool that will never run
    assert warnings(res) == [
        "agents: warning: tools that cannot run here are kept as disabled_tools, never run: "
        "memgpt_agent: conversation_search"
    ]
    # the private blocks come from the definition on first use
    blocks = BlockStore(Workspace(ws)).for_agent(agent)
    assert [b.label for b in blocks] == ["human", "persona"] and blocks[0].value == human.value


def test_customer_service_reference_file_lists_every_custom_tool_in_one_warning(offline_cli: CLI, ws: Path):
    res = offline_cli.ok("import", str(CUSTOMER), "--json")
    data = res.json()
    assert [a["name"] for a in data["agents"]] == ["customer_service"]
    agent = AgentStore(Workspace(ws)).get("customer_service")
    assert sorted(agent.disabled_tools) == [
        "cancel_order",
        "check_order_status",
        "conversation_search",
        "escalate",
        "terminate_chat",
    ]
    assert agent.tools == ["memory_replace", "memory_insert"]
    [line] = warnings(res)
    for name in agent.disabled_tools:
        assert name in line
    assert "cancel_order (custom)" in line
    # the custom code is neither stored nor run
    assert "def cancel_order" not in "".join(p.read_text() for p in ws.rglob("*") if p.is_file())


def test_both_reference_files_import_into_one_workspace_with_history(offline_cli: CLI, ws: Path):
    offline_cli.ok("import", str(MEMGPT), "--with-history")
    offline_cli.ok("import", str(CUSTOMER), "--with-history")
    names = AgentStore(Workspace(ws)).names()
    assert names == ["customer_service", "memgpt_agent"]
    # their only message is Letta's compiled system prompt, which we rebuild on every call: no history file
    assert not (ws / ".agents" / "history").exists() or not list((ws / ".agents" / "history").iterdir())


def test_a_plain_json_file_imports_like_a_double_encoded_one(tmp_path: Path):
    inner = json.loads(MEMGPT.read_text())
    assert isinstance(inner, str)  # Letta's file is a JSON string holding the document
    plain = parse_agent_file(inner.encode(), "plain.af")
    twice = parse_agent_file(MEMGPT.read_bytes(), "twice.af")
    assert plain == twice and plain.agents[0].name == "memgpt_agent"


# ---------------------------------------------------------------------------------------- the mapping


def test_shared_blocks_tags_rules_and_names_map(offline_cli: CLI, ws: Path, tmp_path: Path):
    res = offline_cli.ok("import", str(team(tmp_path)))
    store = AgentStore(Workspace(ws))
    lead, worker = store.get("research-lead"), store.get("worker")
    # the block both use is ONE shared block; the others are private
    assert lead.memory.shared == ["plan"] and worker.memory.shared == ["plan"]
    assert lead.memory.blocks["persona"].value == "I lead" and lead.memory.blocks["persona"].read_only
    assert worker.memory.blocks["persona"].value == "I work"
    plan = BlockStore(Workspace(ws)).get("plan")
    assert (plan.value, plan.limit, plan.description, plan.owner) == ("1. read", 5000, "the plan", None)
    assert sorted(p.name for p in (ws / ".agents" / "blocks" / "shared").glob("*.json")) == ["plan.json"]
    # tags, tools, rules
    assert lead.tags == ["team", "lead-role"]
    assert lead.tools == ["send_message", "core_memory_append"] and lead.disabled_tools == ["lookup"]
    assert worker.tools == ["send_message"] and worker.disabled_tools == ["archival_memory_search"]
    assert (lead.tool_rules.first, lead.tool_rules.terminal) == ("core_memory_append", ["send_message"])
    assert worker.tool_rules.terminal == []
    # what changed is said once each
    text = "\n".join(warnings(res))
    assert "'Research Lead' -> 'research-lead'" in text
    assert "'Lead Role' -> 'lead-role'" in text
    assert "max_count_per_step(send_message)" in text
    disabled = [w for w in warnings(res) if "disabled_tools" in w]
    assert (
        len(disabled) == 1
        and "research-lead: lookup (custom)" in disabled[0]
        and "archival_memory_search" in disabled[0]
    )


def test_a_custom_or_mcp_tool_never_runs_even_under_a_built_in_name(ws: Path):
    tools = [
        letta_tool("tool-0", "send_message", "custom", source_code="def send_message(message): ..."),
        letta_tool("tool-1", "search_docs", "external_mcp"),
        letta_tool("tool-2", "memory_rethink", None),
    ]
    data = doc([agent("agent-0", "a", tool_ids=["tool-0", "tool-1", "tool-2"])], tools=tools)
    result = import_agent_file(Workspace(ws), parse_agent_file(json.dumps(data).encode(), "x.af"))
    imported = AgentStore(Workspace(ws)).get("a")
    assert imported.tools == ["memory_rethink"] and imported.disabled_tools == ["send_message", "search_docs"]
    assert "send_message (custom), search_docs (external_mcp)" in result.plan.warnings[0]


def test_model_endpoint_becomes_base_url_without_credentials(tmp_path: Path, ws: Path):
    llm = {
        "model": "llama3",
        "model_endpoint_type": "openai",
        "model_endpoint": "http://bob:s3cret@10.0.0.5:8000/v1?key=k",
        "temperature": 0.2,
    }
    af = parse_agent_file(json.dumps(doc([agent("agent-0", "local", llm_config=llm)])).encode(), "x.af")
    import_agent_file(Workspace(ws), af, trust_endpoints=True)  # taken only when asked for (test_security.py)
    imported = AgentStore(Workspace(ws)).get("local")
    assert (imported.model, imported.base_url, imported.temperature) == ("llama3", "http://10.0.0.5:8000/v1", 0.2)
    assert "s3cret" not in (ws / "agents.d" / "local.toml").read_text()


def test_normalise_name_and_strip_credentials():
    assert normalise_name("Customer Service Bot!") == "customer-service-bot"
    assert normalise_name("  __Über  Agent__ ") == "ber-agent__"
    assert normalise_name("日本") == ""
    assert len(normalise_name("x" * 300)) == 64
    assert strip_credentials("https://u:p@example.org:8443/v1?api_key=1#f") == "https://example.org:8443/v1"


# ------------------------------------------------------------------------------------------ round trip


def build_workspace(cli: CLI, ws: Path) -> None:
    """Agents using every field we carry: shared and private blocks, rules, limits, model settings, tools."""
    (ws / "agents.d" / "boss.toml").write_text(
        'version = 1\nname = "boss"\ndescription = "runs the team"\nmodel = "gpt-4o"\n'
        'base_url = "http://127.0.0.1:9999/v1"\napi_key_env = "BOSS_KEY"\ntemperature = 0.3\n'
        'system = "You are the boss."\ntags = ["team", "lead"]\n'
        'tools = ["send_message", "send_message_to_agents_matching_all_tags", "core_memory_append"]\n'
        'disabled_tools = ["web_search"]\n'
        '[tool_rules]\nfirst = "core_memory_append"\nterminal = ["send_message"]\n'
        "[limits]\nmax_steps = 4\n"
        '[memory]\nshared = ["plan", "notes"]\n'
        '[memory.blocks.persona]\nvalue = "I decide."\nlimit = 300\ndescription = "who I am"\nread_only = true\n'
    )
    cli.ok("create", "worker", "-t", "team", "--shared", "plan", "--memory", "persona=I do.")
    cli.ok("create", "solo")  # every default: no model, every built-in tool
    store = BlockStore(Workspace(ws))
    store.create(Block(label="plan", value="1. plan\n2. do", limit=800, description="the plan", metadata={"k": "v"}))
    store.create(Block(label="notes", value="only the boss reads this", read_only=True))


def test_export_then_import_gives_the_same_agents_and_blocks(offline_cli: CLI, ws: Path, tmp_path: Path):
    build_workspace(offline_cli, ws)
    out = tmp_path / "team.af"
    offline_cli.ok("export", "boss", "worker", "solo", "-o", str(out))
    target = tmp_path / "copy"
    (target / "agents.d").mkdir(parents=True)
    res = CLI(target, offline_cli.env).ok("import", str(out), "--trust-endpoints")  # our own file
    taken = "boss: base_url http://127.0.0.1:9999/v1, api_key_env BOSS_KEY"
    assert warnings(res) == [
        f"agents: warning: the file's endpoints and key variables were taken (--trust-endpoints): {taken}"
    ]
    src, dst = AgentStore(Workspace(ws)), AgentStore(Workspace(target))
    assert dst.names() == ["boss", "solo", "worker"]
    for name in dst.names():
        assert dst.get(name) == src.get(name), name
        assert dump_agent(dst.get(name)) == dump_agent(src.get(name))
    fields = ("label", "value", "limit", "description", "read_only", "metadata")
    for label in ("plan", "notes"):  # "notes" is used by one agent only and stays shared
        a, b = BlockStore(Workspace(ws)).get(label), BlockStore(Workspace(target)).get(label)
        assert [getattr(b, f) for f in fields] == [getattr(a, f) for f in fields]


def test_export_writes_a_letta_agent_file(offline_cli: CLI, ws: Path):
    build_workspace(offline_cli, ws)
    data = json.loads(offline_cli.ok("export", "boss", "worker").out)
    assert list(data) == [
        "agents",
        "groups",
        "blocks",
        "files",
        "sources",
        "tools",
        "mcp_servers",
        "metadata",
        "created_at",
    ]
    assert all(isinstance(v, str) for v in data["metadata"].values())  # Letta wants dict[str, str]
    boss, worker = data["agents"]
    assert (boss["id"], worker["id"]) == ("agent-0", "agent-1")
    blocks = {b["id"]: b for b in data["blocks"]}
    assert sorted(blocks) == [f"block-{i}" for i in range(len(blocks))]
    shared = set(boss["block_ids"]) & set(worker["block_ids"])
    assert [blocks[i]["label"] for i in shared] == ["plan"]  # exported once, listed by both
    assert {blocks[i]["label"] for i in boss["block_ids"]} == {"persona", "plan", "notes"}
    for b in data["blocks"]:
        assert {"label", "value", "limit", "description", "read_only", "metadata"} <= set(b)
    tools = {t["id"]: t for t in data["tools"]}
    assert len({t["name"] for t in data["tools"]}) == len(data["tools"])  # each tool once
    assert {tools[i]["name"]: tools[i]["tool_type"] for i in boss["tool_ids"]} == {
        "send_message": "letta_core",
        "send_message_to_agents_matching_all_tags": "letta_multi_agent_core",
        "core_memory_append": "letta_memory_core",
    }
    assert all(t["source_code"] is None and t["json_schema"]["name"] == t["name"] for t in data["tools"])
    assert boss["tool_rules"] == [
        {"tool_name": "core_memory_append", "type": "run_first", "prompt_template": None},
        {"tool_name": "send_message", "type": "exit_loop", "prompt_template": None},
    ]
    assert boss["llm_config"] == {
        "model": "gpt-4o",
        "model_endpoint_type": "openai",
        "model_endpoint": "http://127.0.0.1:9999/v1",
        "context_window": 128000,
        "temperature": 0.3,
    }
    assert boss["agent_type"] == "letta_v1_agent" and boss["tags"] == ["team", "lead"]
    assert boss["messages"][0]["role"] == "system" and boss["in_context_message_ids"] == ["message-0"]
    assert worker["messages"][0]["id"] == "message-1"  # message ids are unique across the file
    # and Letta's import would find every reference
    for a in data["agents"]:
        assert set(a["block_ids"]) <= set(blocks) and set(a["tool_ids"]) <= set(tools)


def test_export_carries_the_current_value_of_a_used_private_block(offline_cli: CLI, ws: Path):
    offline_cli.ok("create", "a", "--memory", "persona=first")
    store = BlockStore(Workspace(ws))
    store.for_agent(AgentStore(Workspace(ws)).get("a"))
    store.edit("persona", "a", lambda b: "learned since", actor="a", tool="memory_rethink")
    [b] = json.loads(offline_cli.ok("export", "a").out)["blocks"]
    assert (b["label"], b["value"]) == ("persona", "learned since")


def test_export_never_writes_secrets(offline_cli: CLI, ws: Path):
    (ws / "agents.d" / "leaky.toml").write_text(
        'version = 1\nname = "leaky"\nbase_url = "https://alice:hunter2@llm.example.org/v1?api_key=sk-live-123"\n'
        'api_key_env = "LEAKY_KEY"\n'
    )
    res = offline_cli.ok("export", "leaky", env={"LEAKY_KEY": "sk-env-secret", "OPENAI_API_KEY": "sk-openai-secret"})
    for secret in ("hunter2", "alice", "sk-live-123", "sk-env-secret", "sk-openai-secret"):
        assert secret not in res.out
    [a] = res.json()["agents"]
    assert a["llm_config"]["model_endpoint"] == "https://llm.example.org/v1"
    assert a["tool_exec_environment_variables"] == {} and a["secrets"] is None


def test_history_round_trip(offline_cli: CLI, ws: Path, tmp_path: Path):
    offline_cli.ok("create", "talker")
    turns = [
        [("user", "hi", None), ("assistant", None, "call-1"), ("tool", "ok", "call-1"), ("assistant", "hello!", None)],
        [("user", "bye", None), ("assistant", "see you", None)],
    ]
    lines = []
    for t, turn in enumerate(turns):
        for seq, (role, content, call) in enumerate(turn):
            calls = [
                {
                    "id": call,
                    "type": "function",
                    "function": {"name": "core_memory_append", "arguments": '{"label": "x", "content": "y"}'},
                }
            ]
            lines.append(
                HistoryEntry(
                    turn_id=f"t{t}",
                    seq=seq,
                    role=role,
                    content=content,
                    tool_calls=calls if role == "assistant" and call else None,
                    tool_call_id=call if role == "tool" else None,
                ).model_dump_json(exclude_none=True)
            )
    (ws / ".agents" / "history").mkdir(parents=True)
    (ws / ".agents" / "history" / "talker.jsonl").write_text("\n".join(lines) + "\n")

    out = tmp_path / "talker.af"
    offline_cli.ok("export", "talker", "--with-history", "-o", str(out))
    exported = json.loads(out.read_text())["agents"][0]["messages"]
    assert [m["role"] for m in exported] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant"]
    assert exported[1]["content"] == [{"type": "text", "text": "hi"}]
    assert exported[2]["tool_calls"][0]["function"]["name"] == "core_memory_append"

    target = tmp_path / "copy"
    (target / "agents.d").mkdir(parents=True)
    CLI(target, offline_cli.env).ok("import", str(out), "--with-history", "--prefix", "old-")
    got = [
        HistoryEntry.model_validate_json(line)
        for line in (target / ".agents" / "history" / "old-talker.jsonl").read_text().splitlines()
    ]
    want = [HistoryEntry.model_validate_json(line) for line in lines]
    strip = lambda e: (e.role, e.content or "", e.tool_calls, e.tool_call_id, e.seq)  # noqa: E731
    assert [strip(e) for e in got] == [strip(e) for e in want]
    assert all(e.content is not None for e in got)  # issue 15: "" not null (llama.cpp refuses null content)
    # one turn per user message, seq restarting at 0: history.window() keeps whole turns
    assert len({e.turn_id for e in got}) == 2 and got[0].turn_id != got[4].turn_id
    assert got[0].sender == "user"


def test_letta_messages_import_as_history(ws: Path):
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "compiled prompt"}]},
        {"role": "user", "content": [{"type": "text", "text": json.dumps({"type": "user_message", "message": "hey"})}]},
        {"role": "assistant", "content": [{"type": "reasoning", "reasoning": "hmm"}, {"type": "text", "text": "yo"}]},
        {"role": "approval", "content": []},
        {"role": "tool", "content": None, "tool_call_id": "c1", "tool_returns": [{"func_response": "done"}]},
    ]
    af = parse_agent_file(json.dumps(doc([agent("agent-0", "a", messages=messages)])).encode(), "x.af")
    result = import_agent_file(Workspace(ws), af, with_history=True)
    entries = result.plan.histories["a"]
    assert [(e.role, e.content) for e in entries] == [("user", "hey"), ("assistant", "yo"), ("tool", "done")]
    assert any("1 approval" in w for w in result.plan.warnings)


# --------------------------------------------------------------------------------- clashes and renames


def test_an_existing_agent_is_a_clash_until_renamed(offline_cli: CLI, ws: Path):
    offline_cli.ok("import", str(MEMGPT))
    before = snapshot(ws)
    fails(offline_cli("import", str(MEMGPT)), 5, "'memgpt_agent' already exists", "--rename")
    assert snapshot(ws) == before
    offline_cli.ok("import", str(MEMGPT), "--rename", "memgpt_agent=sam")
    offline_cli.ok("import", str(MEMGPT), "--prefix", "copy-")
    assert AgentStore(Workspace(ws)).names() == ["copy-memgpt_agent", "memgpt_agent", "sam"]


def test_rename_and_prefix_rules(offline_cli: CLI, ws: Path, tmp_path: Path):
    path = team(tmp_path)
    fails(offline_cli("import", str(path), "--rename", "nobody=x"), 2, "no agent named 'nobody'")
    fails(offline_cli("import", str(path), "--rename", "worker=Bad Name"), 2, "invalid agent name")
    fails(offline_cli("import", str(path), "--prefix", "Bad Prefix "), 2, "--prefix")
    assert snapshot(ws) == {"agents.d": None}
    # OLD may be the name in the file or its normalised form; renamed agents get no prefix
    offline_cli.ok("import", str(path), "--rename", "Research Lead=boss", "--prefix", "t1-")
    assert AgentStore(Workspace(ws)).names() == ["boss", "t1-worker"]


def test_two_agents_with_one_name_in_a_file_are_refused(offline_cli: CLI, ws: Path, tmp_path: Path):
    path = write_af(tmp_path / "dup.af", doc([agent("agent-0", "Helper"), agent("agent-1", "helper")]))
    fails(offline_cli("import", str(path)), 5, "'Helper' and 'helper'", "'helper'")
    assert snapshot(ws) == {"agents.d": None}
    offline_cli.ok("import", str(path), "--rename", "Helper=helper-2")


def test_a_shared_block_label_already_in_the_workspace_is_refused(offline_cli: CLI, ws: Path, tmp_path: Path):
    BlockStore(Workspace(ws)).create(Block(label="plan", value="ours"))
    before = snapshot(ws)
    fails(offline_cli("import", str(team(tmp_path))), 5, "shared block 'plan' already exists")
    assert snapshot(ws) == before


def test_an_existing_history_is_never_mixed_into(offline_cli: CLI, ws: Path, tmp_path: Path):
    path = write_af(tmp_path / "a.af", doc([agent("agent-0", "a", messages=[{"role": "user", "content": "hi"}])]))
    (ws / ".agents" / "history").mkdir(parents=True)
    (ws / ".agents" / "history" / "a.jsonl").write_text("")
    before = snapshot(ws)
    fails(offline_cli("import", str(path), "--with-history"), 5, "already has a history")
    assert snapshot(ws) == before
    offline_cli.ok("import", str(path))  # without the history there is nothing to mix


# ------------------------------------------------------------------------------------------ hostile files


def _hostile() -> dict[str, tuple[bytes, str]]:
    ok = doc([agent("agent-0", "a", block_ids=["block-0"])], [block("block-0", "persona", "x")])

    def with_(fn) -> bytes:
        data = copy.deepcopy(ok)
        fn(data)
        return json.dumps(data).encode()

    big = "x" * (10 * 1024 * 1024)
    full = json.dumps(ok).encode()
    return {
        "truncated": (full[: len(full) // 2], "not valid JSON"),
        "truncated double-encoded": (json.dumps(json.dumps(ok)).encode()[:-40], "not valid JSON"),
        "string holding garbage": (json.dumps("{agents: nope").encode(), "JSON string in the file is not valid JSON"),
        "top-level list": (b"[1, 2]", "top level is a list"),
        "top-level number": (b"42", "top level is a int"),
        "top-level null": (b"null", "top level is a NoneType"),
        "empty": (b"", "not valid JSON"),
        "not utf-8": (b"\xff\xfe{\x00", "not UTF-8"),
        "no agents key": (b"{}", "agents"),
        "no agents": (json.dumps(doc([])).encode(), "no agents"),
        "agents not a list": (with_(lambda d: d.update(agents={"a": 1})), "agents"),
        "name not a string": (with_(lambda d: d["agents"][0].update(name=5)), "agents.0.name"),
        "tags wrong type": (with_(lambda d: d["agents"][0].update(tags="a,b")), "agents.0.tags"),
        "limit wrong type": (with_(lambda d: d["blocks"][0].update(limit="lots")), "blocks.0.limit"),
        "NaN temperature": (json.dumps(ok).replace('"temperature": 0.7', '"temperature": NaN').encode(), "NaN"),
        "deep nesting": (b'{"agents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        "10 MB block value": (with_(lambda d: d["blocks"][0].update(value=big)), "more than we allow"),
        "10 MB system prompt": (with_(lambda d: d["agents"][0].update(system=big)), "system"),
        "10 MB name": (with_(lambda d: d["agents"][0].update(name=big)), "agents.0.name"),
        "block limit too large": (with_(lambda d: d["blocks"][0].update(limit=10**9)), "limit"),
        "path traversal name": (with_(lambda d: d["agents"][0].update(name="../../etc")), "looks like a path"),
        "path traversal label": (with_(lambda d: d["blocks"][0].update(label="../x")), "looks like a path"),
        "unusable name": (with_(lambda d: d["agents"][0].update(name="日本")), "no usable characters"),
        "unknown block id": (with_(lambda d: d["agents"][0].update(block_ids=["block-9"])), "'block-9'"),
        "unknown tool id": (with_(lambda d: d["agents"][0].update(tool_ids=["tool-3"])), "'tool-3'"),
        "duplicate block ids": (with_(lambda d: d["blocks"].append(block("block-0", "other"))), "two blocks"),
        "two blocks one label": (
            with_(
                lambda d: (
                    d["blocks"].append(block("block-1", "Persona")),
                    d["agents"][0].update(block_ids=["block-0", "block-1"]),
                )
            ),
            "two blocks labelled 'persona'",
        ),
        "bad temperature": (with_(lambda d: d["agents"][0]["llm_config"].update(temperature=9)), "temperature"),
        "bad extension": (with_(lambda d: d["agents"][0].update(metadata={"letta_cli": {"shared": 3}})), "letta_cli"),
        "huge message": (
            with_(lambda d: d["agents"][0].update(messages=[{"role": "user", "content": "y" * 1_000_001}])),
            "more than we allow",
        ),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_files_give_one_error_line_and_change_nothing(offline_cli: CLI, ws: Path, tmp_path: Path, case: str):
    data, needle = HOSTILE[case]
    (ws / "agents.d" / "keep.toml").write_text('version = 1\nname = "keep"\n')
    path = tmp_path / "hostile.af"
    path.write_bytes(data)
    before = snapshot(ws)
    line = fails(offline_cli("import", str(path), "--with-history"), 4, needle)
    assert len(line) < 400  # a line, not a dump of the file
    assert snapshot(ws) == before


def test_a_missing_file_or_a_huge_one_is_refused(offline_cli: CLI, ws: Path, tmp_path: Path):
    fails(offline_cli("import", str(tmp_path / "nope.af")), 2, "cannot read")
    fails(offline_cli("import", "-", input=b"[]"), 4, "<stdin>", "top level")


def test_a_failed_write_removes_what_was_written(ws: Path, tmp_path: Path):
    plain = Workspace(ws)
    plain.ensure_state()
    (ws / ".agents" / "history").write_text("a file where the history folder should be")
    data = json.loads(team(tmp_path).read_text())
    data["agents"][1]["messages"] = [{"role": "user", "content": "hi"}]
    af = parse_agent_file(json.dumps(data).encode(), "team.af")
    before = snapshot(ws)
    with pytest.raises((OSError, StorageError)):  # the shared block and both agent files were written first
        import_agent_file(plain, af, with_history=True)
    assert snapshot(ws) == before


def test_a_failed_write_in_a_fresh_folder_leaves_no_state_behind(tmp_path: Path):
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "agents.d").write_text("not a folder")  # the agent files cannot be written
    af = parse_agent_file(team(tmp_path).read_bytes(), "team.af")
    before = snapshot(root)
    with pytest.raises((OSError, StorageError)):
        import_agent_file(Workspace(root), af)
    assert snapshot(root) == before


def test_unsupported_parts_are_named_in_a_warning(offline_cli: CLI, tmp_path: Path):
    data = doc(
        [agent("agent-0", "a")],
        [block("block-7", "orphan")],
        groups=[{"id": "group-0"}],
        mcp_servers=[{"id": "mcp_server-0", "server_type": "sse", "server_name": "x"}],
    )
    res = offline_cli.ok("import", str(write_af(tmp_path / "a.af", data, twice=True)))
    text = "\n".join(warnings(res))
    assert "orphan (block-7)" in text and "1 groups" in text and "1 mcp_servers" in text


# ------------------------------------------------------------------------------------------------ export


def test_export_errors(offline_cli: CLI, ws: Path, tmp_path: Path):
    offline_cli.ok("create", "a")
    fails(offline_cli("export", "ghost"), 3, "ghost")
    out = tmp_path / "a.af"
    out.write_text("precious")
    fails(offline_cli("export", "a", "-o", str(out)), 5, "--force")
    assert out.read_text() == "precious"
    res = offline_cli.ok("export", "a", "-o", str(out), "--force", "--json")
    assert res.json()["agents"] == ["a"] and json.loads(out.read_text())["agents"][0]["name"] == "a"


def test_an_exported_default_agent_keeps_its_defaults(offline_cli: CLI, ws: Path, tmp_path: Path):
    (ws / "agents.toml").write_text('version = 1\nmodel = "house-model"\nbase_url = "http://127.0.0.1:1/v1"\n')
    offline_cli.ok("create", "plain")
    data = json.loads(offline_cli.ok("export", "plain").out)
    llm = data["agents"][0]["llm_config"]
    assert (llm["model"], llm["model_endpoint"], llm["temperature"]) == ("house-model", "http://127.0.0.1:1/v1", 0.7)
    assert len(data["agents"][0]["tool_ids"]) == len(data["tools"]) >= 9  # every built-in tool
    af = parse_agent_file(json.dumps(data).encode(), "plain.af")
    other = tmp_path / "other"
    other.mkdir()
    import_agent_file(Workspace(other), af)
    assert AgentStore(Workspace(other)).get("plain") == AgentDef(name="plain")
