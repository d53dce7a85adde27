"""Turn overhead: what the scheduler itself costs per turn, with a zero-latency model, against the physical
limit of one atomic durable file write.

Method. N messages go to ONE agent, so its turns run strictly one after another and the drain's wall time
is the sum of the turns' costs (nothing overlaps). The model is the scripted FakeLLM (no delay) spoken to
by the real openai SDK over HTTP on 127.0.0.1. Model time is excluded by subtracting, for each turn, the
`duration_ms` of its `model_call` trace event (the SDK call as timed by letta_cli.model.client, i.e. client + HTTP +
server); as a cross-check the same number of identical requests is sent with a bare AsyncOpenAI client in
the same run, and the script shows both. What is left is the scheduler's own work per turn: scan and claim,
building the prompt (agent file, memory blocks, history window), the trace events, committing the turn
record, appending the history, acking.

The agent starts with --history turns (default 1,000) already in its history file, written with
letta_cli.store.history.append_turn: an agent that has been talking for a while. The scheduler reads the tail of
that file on every turn, so a fresh agent (--history 0) is cheaper for its first few hundred turns.

Driven through the library as a user script would: letta_cli.app.messaging.publish, then
letta_cli.app.messaging.run_scheduler(ws, "drain"). Publishing is timed separately (it is the producer's cost).
The openai import is a one-time cost per process and is reported separately, not charged to the turns.

    .venv/bin/python bench/turn_overhead.py [--turns 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    cleanup,
    header,
    make_workspace,
    measure_raw_writes,
    median,
    ms,
    ratio,
    read_trace,
    scratch,
    start_fakellm,
)

from letta_cli.app import messaging as client
from letta_cli.core.ids import new_id
from letta_cli.core.models import HistoryEntry
from letta_cli.store import history
from letta_cli.store.workspace import Workspace


async def bare_sdk_calls(url: str, body: dict, n: int) -> float:
    """Seconds for n sequential chat completions with a bare AsyncOpenAI client (the model-time baseline)."""
    from openai import AsyncOpenAI

    api = AsyncOpenAI(api_key="not-needed", base_url=url, max_retries=0)
    kwargs = {k: v for k, v in body.items() if k in ("model", "messages", "tools", "tool_choice")}
    await api.chat.completions.create(**kwargs)  # connect once, like the scheduler's first call
    started = time.perf_counter()
    for _ in range(n):
        await api.chat.completions.create(**kwargs)
    elapsed = time.perf_counter() - started
    await api.close()
    return elapsed


def prefill_history(ws: Workspace, agent: str, turns: int) -> None:
    """`turns` past exchanges (a question and a short answer each) in the agent's history file."""
    entries = []
    for i in range(turns):
        tid = new_id()
        entries.append(HistoryEntry(turn_id=tid, seq=0, role="user", content=f"earlier question {i}", sender="user"))
        entries.append(HistoryEntry(turn_id=tid, seq=1, role="assistant", content=f"ok from solo, answer {i}"))
    if entries:
        history.append_turn(ws.history_file(agent), [e.model_dump(mode="json", exclude_none=True) for e in entries])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=300, help="turns in all (default 300)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--history", type=int, default=1000, help="turns already in the agent's history (default 1000)")
    args = ap.parse_args()
    per = max(1, args.turns // args.rounds)
    n = per * args.rounds

    header(
        f"turn overhead: {n} sequential turns of one agent (history: {args.history} earlier turns), "
        f"zero-latency model, {args.rounds} rounds"
    )
    t = time.perf_counter()
    import openai  # noqa: F401  (one-time; the scheduler imports it lazily on the first model call)

    print(f"   one-time openai import: {ms(time.perf_counter() - t)}")
    llm = start_fakellm()
    url = llm.url
    work = scratch("turn")
    try:
        root = make_workspace(work / "ws", {"solo": ["bench"]}, base_url=url, blocks={"persona": "", "human": ""})
        ws = Workspace(root)
        prefill_history(ws, "solo", args.history)
        raw_t = pub_t = drain_t = model_t = 0.0
        payload = None
        per_round = []
        for r in range(args.rounds):
            if payload is not None:
                raw = measure_raw_writes(work / f"raw{r}", per, payload)
            t0 = time.perf_counter()
            ids = [client.publish(ws, ["solo"], f"question {r}.{i}: what is next?")[0].id for i in range(per)]
            t1 = time.perf_counter()
            handled = client.run_scheduler(ws, "drain")
            t2 = time.perf_counter()
            assert handled == per, (handled, per)
            wanted = set(ids)
            calls = [e for e in read_trace(root) if e["event"] == "model_call" and e["message_id"] in wanted]
            assert len(calls) == per
            model = sum(e["duration_ms"] for e in calls) / 1000
            if payload is None:  # the raw baseline writes a file the size of one turn record
                payload = (root / ".agents" / "turns" / f"{ids[0]}.json").read_bytes()
                raw = measure_raw_writes(work / f"raw{r}", per, payload)
            raw_t, pub_t, drain_t, model_t = raw_t + raw, pub_t + t1 - t0, drain_t + t2 - t1, model_t + model
            own = (t2 - t1 - model) / per
            per_round.append(own / (raw / per))
            print(
                f"   round {r + 1}: drain {ms((t2 - t1) / per)}/turn, model (trace) {ms(model / per)}/turn, "
                f"own {ms(own)}/turn, raw {ms(raw / per)}/write: own = {per_round[-1]:.2f} raw writes",
                flush=True,
            )

        body = llm.requests[-1]
        sdk_t = asyncio.run(bare_sdk_calls(url, body, n))
        raw = raw_t / n
        own = (drain_t - model_t) / n
        own_sdk = (drain_t - sdk_t) / n
        print()
        print(f"raw durable write ({len(payload)} B)     {ms(raw):>10}")
        print(f"publish (client.publish, 1 msg)   {ms(pub_t / n):>10} per message")
        print(f"drain wall                        {ms(drain_t / n):>10} per turn   ({n / drain_t:.1f} turns/s)")
        print(f"model time, trace duration_ms     {ms(model_t / n):>10} per turn")
        print(f"model time, bare SDK same request {ms(sdk_t / n):>10} per call")
        print(f"scheduler's own cost (trace)      {ms(own):>10} per turn   ({1 / own:.1f} turns/s excluding the model)")
        print(f"scheduler's own cost (bare SDK)   {ms(own_sdk):>10} per turn")
        print(f"request sent: {len(body['messages'])} messages, {len(body.get('tools', []))} tools")
        print(
            f"per-round own cost in raw writes: median {median(per_round):.2f} "
            f"(range {min(per_round):.2f}-{max(per_round):.2f})"
        )
        print()
        ratio("turn_own_cost_in_raw_writes", own / raw, 4.0)
        return 0
    finally:
        llm.stop()
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
