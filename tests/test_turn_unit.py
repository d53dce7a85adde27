"""run_turn in-process: a stub Runtime (no scheduler, no queue) and the scripted model server reached through
the real openai SDK. Each test is one turn of one agent, and checks what the model was sent, what the turn
collected (its record, outbox, replies) and what it asked of the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from letta_cli.app.agents import new_agent
from letta_cli.core.config import Limits
from letta_cli.core.models import AgentDef, Message, Usage
from letta_cli.engine.budgets import BudgetExceeded, Budgets
from letta_cli.store import history
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace
from tests.fakellm import FakeLLM, call, calls, text, tool_results
from tests.turnkit import BudgetSpent, StubRuntime, context, reply, run, small_workspace, turn

WAIT = "send_message_to_agent_and_wait_for_reply"
ASYNC = "send_message_to_agent_async"
BROADCAST = "send_message_to_agents_matching_all_tags"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return small_workspace(tmp_path / "ws")


def results(llm: FakeLLM, n: int = 1) -> list[str]:
    """The tool results the model saw in its n-th request."""
    return tool_results(llm.requests[n])


# ------------------------------------------------------------------------------------------- answers


def test_a_plain_answer(ws, llm):
    llm.script("alice", [text("  The plan is v1.  ")])
    rt = StubRuntime()
    record = turn(ws, llm, "alice", "What is the plan?", runtime=rt)
    assert (record.status, record.reply, record.error) == ("ok", ["The plan is v1."], None)
    assert [(h["role"], h.get("content")) for h in record.history] == [
        ("user", "What is the plan?"),
        ("assistant", "The plan is v1."),
    ]
    assert record.usage.model_calls == 1 and record.usage.total_tokens == rt.tokens > 0
    assert rt.slots_taken == 1 and rt.in_slot == 0
    assert record.outbox == [] and rt.sent == []


def test_an_empty_answer_is_asked_again_without_tools(ws, llm):
    llm.script("alice", [text(""), text("here")])
    record = turn(ws, llm, "alice", "hi")
    assert record.reply == ["here"]
    first, second = llm.requests
    assert first["tools"] and second["tools"] == first["tools"] and second["tool_choice"] == "none"


def offered(body: dict) -> dict[str, dict]:
    return {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in body["tools"]}


def test_agent_ids_tags_and_labels_are_constrained_in_small_workspaces(ws, llm):
    turn(ws, llm, "alice", "hi")
    turn(ws, llm, "bob", "hi")
    alice, bob = map(offered, llm.requests)
    assert alice[ASYNC]["other_agent_id"]["enum"] == ["bob"] and bob[WAIT]["other_agent_id"]["enum"] == ["alice"]
    assert alice[BROADCAST]["tags"]["items"]["enum"] == ["crew"]  # the tags of the others
    assert bob[BROADCAST]["tags"]["items"]["enum"] == ["crew", "lead"]
    for name in ("core_memory_append", "memory_rethink"):
        assert alice[name]["label"]["enum"] == ["persona", "team"]  # private blocks, then shared ones
        assert "enum" not in bob[name]["label"]  # no blocks: nothing to list


def test_the_agent_list_is_read_once_a_turn_and_afresh_for_the_next(ws, llm):
    """The three messaging tools share one listing per turn; an agent created between turns is offered."""
    turn(ws, llm, "alice", "hi")
    AgentStore(ws).save(new_agent("carol"))
    turn(ws, llm, "alice", "hi again")
    before, after = map(offered, llm.requests)
    for tool in (ASYNC, WAIT):
        assert before[tool]["other_agent_id"]["enum"] == ["bob"]
        assert after[tool]["other_agent_id"]["enum"] == ["bob", "carol"]


def test_history_of_earlier_turns_is_sent(ws, llm):
    llm.script("alice", [text("noted")])
    record = turn(ws, llm, "alice", "my name is Ada")
    history.append_turn(ws.history_file("alice"), record.history)
    turn(ws, llm, "alice", "who am I?")
    contents = [m["content"] for m in llm.requests[1]["messages"] if m["role"] != "system"]
    assert contents == ["my name is Ada", "noted", "who am I?"]


# ---------------------------------------------------------------------------------------------- tools


def test_a_tool_call_then_an_answer(ws, llm):
    llm.script("alice", [call(ASYNC, message="hello bob", other_agent_id="bob"), text("told him")])
    record = turn(ws, llm, "alice", "say hi to bob")
    assert record.reply == ["told him"]
    assert results(llm) == ["Successfully sent message"]
    [out] = record.outbox  # published only when the turn commits: the stub saw no request
    assert (out.recipient, out.sender, out.kind, out.body, out.hop) == ("bob", "alice", "async", "hello bob", 1)
    assert out.parent_id == out.chain_id and out.reply_to is None
    roles = [h["role"] for h in record.history]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert record.history[2]["tool_call_id"] == record.history[1]["tool_calls"][0]["id"]


def test_send_message_is_a_reply_and_ends_the_turn(ws, llm):
    llm.script("alice", [call("send_message", message="done!"), text("never asked")])
    record = turn(ws, llm, "alice", "go")
    assert record.reply == ["done!"] and len(llm.requests) == 1


def test_two_agents_requests_follow_letta_s_order_and_share_the_tools_and_shared_memory(ws, llm):
    """The engine sends Letta's order: the agent's own prompt, then its memory (shared blocks first), then the
    history. The local model's format reads the tools, then the memory first, so two agents holding the same
    shared block share that prefix; the tools' choices, which exclude the caller, come after."""
    from letta_cli.model.chat_template import render_prompt

    AgentStore(ws).save(new_agent("carol", system="You are Carol.", shared=["team"], memory={"notes": "Carol."}))
    prompts = {}
    for name in ("alice", "carol"):
        llm.script(name, [text("ok")])
        turn(ws, llm, name, "hi")
        request = llm.requests_for(name)[-1]
        first, second = (m["content"] for m in request["messages"][:2])
        assert first.startswith("You are") and second.startswith("<memory_blocks>")  # Letta's order, as sent
        assert second.index('<block label="team"') < second.index("<block label=", 10 + second.index('"team"'))
        prompts[name] = render_prompt(request["messages"], request["tools"])
    a, c = prompts["alice"], prompts["carol"]
    n = 0
    while a[n] == c[n]:
        n += 1
    shared = a[:n]
    assert shared.startswith("<|im_start|>system\n# Tools\n") and shared.count('{"name":"') == 9  # every tool
    assert "Goal: ship v1\n</value>\n<chars>13/200</chars>\n</block>\n<block" in shared and "Alice" not in shared
    others = "The values the tools' arguments take:"
    assert '"other_agent_id":["bob","carol"]' in a[a.index(others) :] and '"alice","bob"]' in c[c.index(others) :]


def test_a_memory_edit_is_made_at_once_and_seen_by_the_next_call(ws, llm):
    llm.script("alice", [call("core_memory_append", label="team", content="Owner: Alice"), text("ok")])
    record = turn(ws, llm, "alice", "note the owner")
    assert results(llm) == ["Memory block 'team' updated (26/200 chars)."]
    assert BlockStore(ws).get("team").value == "Goal: ship v1\nOwner: Alice"
    assert "Goal: ship v1\nOwner: Alice" in llm.requests[1]["messages"][1]["content"]  # the prompt is rebuilt
    assert record.status == "ok"


def test_older_parameter_names_and_request_heartbeat_are_accepted(ws, llm):
    llm.script(
        "alice",
        [
            call("memory_replace", label="team", old_str="v1", new_str="v2", request_heartbeat=True),
            text("ok"),
        ],
    )
    turn(ws, llm, "alice", "bump it")
    assert results(llm)[0].startswith("Memory block 'team' updated")
    assert BlockStore(ws).get("team").value == "Goal: ship v2"


@pytest.mark.parametrize(
    "name, raw, error",
    [
        ("run_shell", '{"cmd": "ls"}', "Error: unknown tool 'run_shell'; available: send_message, core_memory_append"),
        ("core_memory_append", '{"label": "team", ', "Error: core_memory_append: the arguments are not valid JSON ("),
        ("core_memory_append", '["team"]', "Error: core_memory_append: the arguments must be a JSON object"),
        (
            "core_memory_append",
            '{"label": "team", "content": 5}',
            "Error: core_memory_append: argument 'content' must be a string, got integer",
        ),
        ("core_memory_append", '{"label": "team"}', "Error: core_memory_append: missing argument content"),
        (
            "memory_rethink",
            '{"label": "team", "new_memory": "x", "mood": "happy"}',
            "Error: memory_rethink: unexpected argument 'mood'; it takes label, new_memory",
        ),
        (
            "memory_insert",
            '{"label": "team", "new_string": "x", "insert_line": "2"}',
            "Error: memory_insert: argument 'insert_line' must be an integer, got string",
        ),
        ("send_message", '{"message": null}', "Error: send_message: argument 'message' must be a string, got null"),
        (
            BROADCAST,
            '{"message": "x", "tags": [1]}',
            f"Error: {BROADCAST}: argument 'tags' must be a list of strings; item 0 is integer",
        ),
        (ASYNC, '{"message": "x", "other_agent_id": "bobb"}', "Error: no agent with id 'bobb'; did you mean bob?"),
        ("core_memory_append", '{"label": "human", "content": "x"}', "Error: agent 'alice' has no memory block"),
    ],
)
def test_a_bad_tool_call_reaches_the_model_as_a_tool_error(ws, llm, name, raw, error):
    llm.script("alice", [call(name, raw), text("sorry")])
    record = turn(ws, llm, "alice", "go")
    [result] = results(llm)
    assert result.startswith(error), result
    assert record.status == "ok" and record.reply == ["sorry"]
    assert BlockStore(ws).get("team").revision == 0
    events = [e for e in map(json.loads, ws.trace_path.read_text().splitlines()) if e["event"] == "tool_call"]
    assert events[-1]["error"] is True and events[-1]["tool"] == name


def test_one_bad_call_does_not_spoil_the_others(ws, llm):
    llm.script("alice", [calls(("nope", {}), ("core_memory_append", {"label": "team", "content": "x"})), text("ok")])
    turn(ws, llm, "alice", "go")
    bad, good = results(llm)
    assert bad.startswith("Error: unknown tool 'nope'") and good.startswith("Memory block 'team' updated")


def test_tags_given_as_one_comma_separated_string(ws, llm):
    llm.script("bob", [call(BROADCAST, message="status?", tags="crew, lead"), text("ok")])
    rt = StubRuntime()
    turn(ws, llm, "bob", "ask", runtime=rt)
    assert [m.recipient for m in rt.sent] == ["alice"]  # the one agent with both tags


# ------------------------------------------------------------------------------------------ tool rules


def test_a_forced_first_tool_is_forced_on_the_first_call_only(ws, llm):
    llm.script("alice", [call("core_memory_append", label="team", content="x"), text("done")])
    turn(ws, llm, "alice", "note it", force_tool="core_memory_append")
    first, second = llm.requests
    assert first["tool_choice"] == {"type": "function", "function": {"name": "core_memory_append"}}
    assert second["tool_choice"] == "auto"


def test_the_first_tool_rule_of_the_agent(ws, llm):
    agent = AgentDef.model_validate({**AgentStore(ws).get("bob").model_dump(), "tool_rules": {"first": "send_message"}})
    llm.script("bob", [call("send_message", message="hi")])
    record = run(context(ws, agent, "hello", StubRuntime()), llm)
    assert llm.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "send_message"}}
    assert record.reply == ["hi"]


def test_the_step_limit_ends_the_turn_in_error_and_the_last_step_allows_no_tool_call(ws, llm):
    (ws.root / "agents.toml").write_text("version = 1\n[limits]\nmax_steps = 3\n")
    ws = Workspace(ws.root)
    llm.on("alice", lambda body: call("core_memory_append", label="team", content="again"))
    record = turn(ws, llm, "alice", "loop")
    assert record.status == "error"
    assert record.error == "step limit reached (3 model calls) before a final answer"
    assert len(llm.requests) == 3 and [r["tool_choice"] for r in llm.requests] == ["auto", "auto", "none"]
    assert llm.requests[2]["tools"] == llm.requests[1]["tools"]  # same tools: the prompt's prefix stays the same
    assert record.history  # the work done is kept (the scheduler appends it to the history)


# ------------------------------------------------------------------------------- other agents, via the runtime


def test_wait_for_reply_goes_through_the_runtime(ws, llm):
    llm.script("alice", [call(WAIT, message="secret word?", other_agent_id="bob"), text("got it")])
    rt = StubRuntime(answer=lambda m: reply(m, "PAPAYA-42"))
    record = turn(ws, llm, "alice", "ask bob", runtime=rt)
    [sent] = rt.sent
    assert (sent.recipient, sent.kind, sent.body, sent.hop) == ("bob", "request", "secret word?", 1)
    assert sent.reply_to == record.message_id and rt.limits == [1]
    assert json.loads(results(llm)[0]) == {"agent_id": "bob", "response": ["PAPAYA-42"]}
    assert record.outbox == []  # a request is published by the runtime, not at commit


@pytest.mark.parametrize(
    "answer, error",
    [
        (lambda m: reply(m, status="dead", error="HTTP 400"), "Error: agent 'bob' could not answer: HTTP 400"),
        (lambda m: "refused: 'bob' is already waiting ... deadlock", "Error: refused: 'bob' is already waiting"),
        (reply, None),
    ],
    ids=["target-failed", "refused", "no-response"],
)
def test_wait_for_reply_failures_are_tool_errors(ws, llm, answer, error):
    llm.script("alice", [call(WAIT, message="hi", other_agent_id="bob"), text("ok")])
    turn(ws, llm, "alice", "ask", runtime=StubRuntime(answer=answer))
    [result] = results(llm)
    if error is None:
        assert json.loads(result) == {"agent_id": "bob", "response": ["<no response>"]}
    else:
        assert result.startswith(error), result


def test_waiting_on_yourself_is_refused_before_the_runtime(ws, llm):
    llm.script("alice", [call(WAIT, message="hi", other_agent_id="alice"), text("ok")])
    rt = StubRuntime()
    turn(ws, llm, "alice", "ask", runtime=rt)
    assert "deadlock" in results(llm)[0] and rt.sent == []


def test_broadcast_gathers_through_the_runtime(ws, llm):
    llm.script("bob", [call(BROADCAST, message="status?", tags=["crew"]), text("collected")])
    rt = StubRuntime(answer=lambda m: reply(m, f"{m.recipient} fine"))
    turn(ws, llm, "bob", "ask the crew", runtime=rt)
    assert [(m.recipient, m.kind) for m in rt.sent] == [("alice", "broadcast")]  # never the sender
    assert rt.limits == [64]  # broadcast_concurrency
    assert json.loads(results(llm)[0]) == [{"agent_id": "alice", "response": ["alice fine"]}]


def test_broadcast_keeps_each_agents_error(ws, llm):
    AgentStore(ws).save(new_agent("carol", tags=["crew"]))
    llm.script("bob", [call(BROADCAST, message="status?", tags=["crew"]), text("ok")])
    outcomes = {"alice": "no reply from 'alice' within 1s", "carol": None}
    rt = StubRuntime(answer=lambda m: outcomes[m.recipient] or reply(m, status="dead", error="boom"))
    turn(ws, llm, "bob", "ask", runtime=rt)
    assert json.loads(results(llm)[0]) == [
        {"agent_id": "alice", "error": "no reply from 'alice' within 1s"},
        {"agent_id": "carol", "error": "boom"},
    ]


def test_an_empty_tag_list_matches_nobody(ws, llm):
    llm.script("alice", [call(BROADCAST, message="all?", tags=[]), text("ok")])
    rt = StubRuntime()
    turn(ws, llm, "alice", "ask", runtime=rt)
    assert results(llm)[0].startswith("Error: argument 'tags' is empty") and rt.sent == []


def test_the_hop_limit_refuses_a_send(ws, llm):
    llm.script("alice", [call(ASYNC, message="again", other_agent_id="bob"), text("ok")])
    record = turn(ws, llm, "alice", "ping", sender="bob", kind="async", hop=8)
    assert results(llm)[0].startswith("Error: not sent: this conversation has reached the hop limit (8")
    assert record.outbox == []
    prefix = "[Incoming message from agent with ID 'bob' - this is a one-way notification"
    assert llm.requests[0]["messages"][-1]["content"].startswith(prefix)


# ------------------------------------------------------------------------------------------------ budgets


def test_a_budget_raising_in_charge_stops_the_turn(ws, llm):
    llm.on("alice", lambda body: call("core_memory_append", label="team", content="more"))
    rt = StubRuntime(budget=1)
    with pytest.raises(BudgetSpent):
        turn(ws, llm, "alice", "go", runtime=rt)
    assert len(llm.requests) == 1  # charged right after the first call, before its tool calls run
    assert BlockStore(ws).get("team").revision == 0


def test_chain_and_agent_token_budgets():
    budgets = Budgets(Limits(chain_token_budget=100, agent_token_budget=60))
    budgets.charge("c1", "a", Usage(prompt_tokens=50, completion_tokens=10))
    with pytest.raises(BudgetExceeded, match=r"agent 'a' token budget \(60\) exceeded in this chain"):
        budgets.charge("c1", "a", Usage(prompt_tokens=1))
    budgets.charge("c1", "b", Usage(prompt_tokens=39))
    with pytest.raises(BudgetExceeded, match=r"chain token budget \(100\) exceeded"):
        budgets.charge("c1", "b", Usage(prompt_tokens=1))
    budgets.charge("c2", "a", Usage(prompt_tokens=60))  # another chain has its own


def test_the_chain_turn_budget_counts_agent_to_agent_turns_only():
    budgets = Budgets(Limits(chain_turn_budget=2))
    root = Message(recipient="a", body="start")
    hop = {"sender": "a", "kind": "async", "chain_id": root.chain_id, "hop": 1}
    assert budgets.admit(root) is None and budgets.admit(root) is None  # from the shell: not counted
    assert budgets.admit(Message(recipient="b", body="1", **hop)) is None
    assert budgets.admit(Message(recipient="a", body="2", **hop)) is None
    assert budgets.admit(Message(recipient="b", body="3", **hop)) == "chain turn budget (2) exhausted"
