"""Where a turn's own cost goes: a diagnostic companion to turn_overhead.py (not one of the six benchmarks).

Same set-up as turn_overhead.py (one agent, --history earlier turns, zero-latency model, drained with
letta_cli.app.messaging.run_scheduler), with wall-clock timers wrapped around the scheduler's stages. The wrappers
only time; they change nothing the code does. Stages that run on the scheduler's I/O threads (commit, apply)
are timed there; the rest run on the event loop. Figures are per turn, medians over --rounds drains.

With --no-fsync, os.fsync is made a no-op for the drains (NOT durable: a diagnostic that separates the
time spent waiting for the disk from the CPU work).

    .venv/bin/python bench/turn_breakdown.py [--turns 100] [--rounds 3] [--history 1000] [--no-fsync]
"""

from __future__ import annotations

import argparse
import collections
import functools
import inspect
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cleanup, header, make_workspace, measure_raw_writes, median, scratch
from broadcast import start_server
from turn_overhead import prefill_history

from letta_cli.app import messaging as client
from letta_cli.engine import scheduler, turn
from letta_cli.model import client as llm
from letta_cli.store import agents, history, queue, records, trace
from letta_cli.store.workspace import Workspace
from letta_cli.tools import messaging

STAGES = [  # (owner, attribute, label); indentation shows what includes what
    (scheduler.Scheduler, "_pump", "loop: _pump (scan new/, peek, claim)"),
    (queue.Queue, "claim", "    claim (rename + fsync cur/ + parse)"),
    (scheduler.Scheduler, "_handle", "task: _handle (the whole turn)"),
    (records.TurnRecords, "get", "    records.get (replay check)"),
    (scheduler.Scheduler, "_run", "    _run (prompt, model, tools)"),
    (llm.ModelClient, "complete", "        model call (SDK + HTTP + server)"),
    (history, "window", "        history.window"),
    (turn, "system_prompt", "        system_prompt (agent file, memory blocks)"),
    (agents.AgentStore, "get", "        AgentStore.get"),
    (messaging, "narrow_schema", "        narrow_schema (3 messaging tools)"),
    (scheduler.Scheduler, "_commit", "    commit turn record (I/O thread)"),
    (scheduler.Scheduler, "_apply", "    apply (I/O thread)"),
    (history, "has_turn", "        history.has_turn"),
    (history, "append_turn", "        history.append_turn"),
    (queue.Queue, "ack", "        ack (unlink)"),
    (trace.Trace, "emit", "trace.emit (3 a turn, any thread)"),
]


def instrument(acc: dict[str, float]) -> None:
    def wrap(fn, label):
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed(*a, **k):
                t = time.perf_counter()
                try:
                    return await fn(*a, **k)
                finally:
                    acc[label] += time.perf_counter() - t
        else:

            @functools.wraps(fn)
            def timed(*a, **k):
                t = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    acc[label] += time.perf_counter() - t

        return timed

    for owner, name, label in STAGES:
        setattr(owner, name, wrap(getattr(owner, name), label))
    # the tools captured narrow_schema when they were defined: point them at the timed one
    from letta_cli.tools.registry import builtin_tools

    for tool in builtin_tools().values():
        if getattr(tool, "specialize", None) is not None and tool.specialize.__name__ == "narrow_schema":
            object.__setattr__(tool, "specialize", messaging.narrow_schema)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=100, help="turns per drain (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="drains (default 3)")
    ap.add_argument("--history", type=int, default=1000, help="turns already in the agent's history (default 1000)")
    ap.add_argument("--no-fsync", action="store_true", help="make os.fsync a no-op (not durable: a diagnostic)")
    args = ap.parse_args()

    header(
        f"turn breakdown: {args.rounds} drains of {args.turns} turns, history {args.history}"
        + (", os.fsync a no-op" if args.no_fsync else "")
    )
    import openai  # noqa: F401

    server, url = start_server(0.0)
    work = scratch("breakdown")
    acc: dict[str, float] = collections.defaultdict(float)
    instrument(acc)
    per_round: list[dict[str, float]] = []
    raws = []
    real_fsync = os.fsync
    try:
        root = make_workspace(work / "ws", {"solo": ["bench"]}, base_url=url, blocks={"persona": "", "human": ""})
        ws = Workspace(root)
        prefill_history(ws, "solo", args.history)
        for r in range(args.rounds):
            raws.append(measure_raw_writes(work / f"raw{r}", 100, b"x" * 730) / 100)
            for i in range(args.turns):
                client.publish(ws, ["solo"], f"question {r}.{i}: what is next?")
            acc.clear()
            if args.no_fsync:
                os.fsync = lambda fd: None
            t0 = time.perf_counter()
            handled = client.run_scheduler(ws, "drain")
            wall = time.perf_counter() - t0
            os.fsync = real_fsync
            assert handled == args.turns
            row = {label: acc[label] / args.turns for _, _, label in STAGES}
            row["drain wall"] = wall / args.turns
            row["own (drain - model call)"] = (wall - acc[STAGES[5][2]]) / args.turns
            per_round.append(row)
        raw = median(raws)
        print(f"   raw durable write (730 B, real fsync): {raw * 1000:.2f} ms")
        print()
        print(f"{'stage':<48} {'ms/turn':>8} {'in raw writes':>14}")
        for label in ["drain wall", "own (drain - model call)", *(s[2] for s in STAGES)]:
            v = median([row[label] for row in per_round])
            print(f"{label:<48} {v * 1000:>8.3f} {v / raw:>14.2f}")
        return 0
    finally:
        os.fsync = real_fsync
        server.stdin.close()
        server.wait(timeout=10)
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
