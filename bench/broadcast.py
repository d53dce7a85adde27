"""Broadcast: N agents whose model answers after 200 ms, against the ideal of one model latency per wave.

Two paths, both through the library and the real openai SDK over HTTP to the scripted FakeLLM:

  * shell path  - what `agents broadcast --tags worker ...` does: letta_cli.app.messaging.publish to the N
                  recipients, then letta_cli.app.messaging.wait (which serves the queue itself: run_scheduler in
                  "until" mode). Wall time from the first publish to the last reply.
  * tool path   - a supervisor agent whose model calls send_message_to_agents_matching_all_tags(tags=
                  ["worker"]) and then answers. Wall time from publishing the supervisor's message to its
                  reply; the broadcast tool call's own duration (from the trace) is shown too.

Sequential would be N x 200 ms (20 s at 100). The floor is one model latency per wave of
limits.concurrency (64 by default) model calls in flight: ceil(N / 64) x 200 ms.

The FakeLLM (a ThreadingHTTPServer) runs in its own process, like a real model server, so it does not
compete with the scheduler for this process's GIL. Two baselines are measured in the same run so that
neither the server nor the SDK is mistaken for letta_cli's cost:
  * server - N concurrent raw HTTP requests (http.client in threads), each answered after 200 ms;
  * SDK    - N chat.completions.create calls with a bare AsyncOpenAI client, at most limits.concurrency
             in flight, with the request a worker's turn sends (system + user message + the tool schemas).

The wall time of a path is then split in three: the floor (model latency per wave), the SDK client's
overhead (bare SDK - floor: the openai client's CPU, serialised on this process's one GIL), and ours (path -
bare SDK: publishing, claiming, prompt building, committing records and histories, waiting).

    .venv/bin/python bench/broadcast.py [--sizes 10,100,500] [--delay 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, cleanup, header, make_workspace, measure_raw_writes, ms, ratio, read_trace, scratch

from letta_cli.app import messaging as client
from letta_cli.store.workspace import Workspace

HERE = Path(__file__).resolve().parent


def start_server(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [PY, str(HERE / "_fakellm_server.py"), str(delay)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise SystemExit("the fake model server did not start")
    return proc, url


def server_baseline(url: str, n: int) -> float:
    """Wall seconds for n concurrent raw POSTs to the fake server (connections opened beforehand)."""
    port = int(url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    errors: list[BaseException] = []
    barrier = threading.Barrier(n + 1)

    def one() -> None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.connect()
            barrier.wait()
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            assert conn.getresponse().read()
            conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def sdk_baseline(url: str, n: int, concurrency: int) -> float:
    """Wall seconds for n concurrent create() calls with a bare AsyncOpenAI (at most `concurrency` at once)."""
    from openai import AsyncOpenAI

    from letta_cli.tools.registry import builtin_tools

    tools = [t.schema for t in builtin_tools().values()]

    async def run() -> float:
        api = AsyncOpenAI(api_key="not-needed", base_url=url, max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            messages = [
                {"role": "system", "content": f'You are a helpful agent.\n\nYou are agent "w{i:04d}".'},
                {"role": "user", "content": "Report your status in one line."},
            ]
            async with gate:
                await api.chat.completions.create(model="m", messages=messages, tools=tools, tool_choice="auto")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - started
        await api.close()
        return elapsed

    return asyncio.run(run())


def shell_path(ws: Workspace, names: list[str]) -> tuple[float, float]:
    """(wall seconds, of which publishing) for publish to every name + wait for every reply."""
    t0 = time.perf_counter()
    messages = client.publish(ws, names, "Report your status in one line.")
    t1 = time.perf_counter()
    records = client.wait(ws, [m.id for m in messages], timeout=600)
    t2 = time.perf_counter()
    bad = [r.error for r in records.values() if r.status != "ok"]
    assert not bad, bad[:3]
    return t2 - t0, t1 - t0


def tool_path(ws: Workspace, n: int) -> tuple[float, float, float]:
    """(wall seconds, broadcast tool call seconds, supervisor model seconds) for one supervisor turn."""
    t0 = time.perf_counter()
    [message] = client.publish(ws, ["supervisor"], "Ask every worker for a status report.")
    records = client.wait(ws, [message.id], timeout=600)
    wall = time.perf_counter() - t0
    record = records[message.id]
    assert record.status == "ok", record.error
    events = [e for e in read_trace(ws.root) if e.get("chain_id") == message.chain_id]
    tool = [e for e in events if e["event"] == "tool_call" and e["agent"] == "supervisor"]
    assert tool and not tool[0]["error"], tool
    replies = [e for e in events if e["event"] == "turn_end" and e["agent"] != "supervisor" and e["status"] == "ok"]
    assert len(replies) == n, (len(replies), n)
    model = sum(e["duration_ms"] for e in events if e["event"] == "model_call" and e["agent"] == "supervisor") / 1000
    return wall, tool[0]["duration_ms"] / 1000, model


def workspace_for(root: Path, n: int, url: str) -> Workspace:
    agents = {f"w{i:04d}": ["worker"] for i in range(n)}
    agents["supervisor"] = ["boss"]
    # a broadcast tool call's N turns are agent-to-agent turns of one chain, and chain_turn_budget (256 by
    # default) would stop the rest of a 500-agent fan-out: lift it so that the timing covers all N
    return Workspace(make_workspace(root, agents, base_url=url, limits={"chain_turn_budget": 100_000}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10,100,500", help="agent counts (default 10,100,500)")
    ap.add_argument("--delay", type=float, default=0.2, help="model latency in seconds (default 0.2)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    header(f"broadcast: {', '.join(map(str, sizes))} agents, model latency {args.delay * 1000:.0f} ms")
    import openai  # noqa: F401  (one-time import, not charged to the broadcast)

    server, url = start_server(args.delay)
    work = scratch("broadcast")
    rows = []
    try:
        for n in sizes:
            ws = workspace_for(work / f"ws{n}", n, url)
            concurrency = ws.config.limits.concurrency
            floor = math.ceil(n / concurrency) * args.delay
            base = server_baseline(url, n)
            sdk = sdk_baseline(url, n, concurrency)
            shell, publish = shell_path(ws, [f"w{i:04d}" for i in range(n)])
            tool, fanout, sup_model = tool_path(ws, n)
            raw = measure_raw_writes(work / f"raw{n}", 50, b"x" * 700) / 50
            rows.append((n, floor, base, sdk, shell, publish, tool, fanout))
            print(
                f"   {n} agents: server {base:.2f} s, bare SDK {sdk:.2f} s, shell path {shell:.2f} s "
                f"(publish {publish:.2f} s), tool path {tool:.2f} s (broadcast tool {fanout:.2f} s, "
                f"supervisor's model calls {sup_model:.2f} s); disk: raw durable write {ms(raw)}",
                flush=True,
            )
        print()
        print(
            f"{'agents':>6} {'floor':>7} {'server':>7} {'SDK':>7} {'shell':>7} {'publish':>8} {'tool':>7} "
            f"{'fan-out':>8} {'sequential':>10} | {'SDK-floor':>9} {'shell-SDK':>9} {'tool-SDK':>9}"
        )
        for n, floor, base, sdk, shell, publish, tool, fanout in rows:
            print(
                f"{n:>6} {floor:>6.2f}s {base:>6.2f}s {sdk:>6.2f}s {shell:>6.2f}s {publish:>7.2f}s {tool:>6.2f}s "
                f"{fanout:>7.2f}s {n * args.delay:>9.1f}s | {sdk - floor:>8.2f}s {shell - sdk:>8.2f}s {tool - sdk:>8.2f}s"
            )
        print("   floor: ceil(N/concurrency) x latency; server: N concurrent raw HTTP requests; SDK: N bare")
        print("   AsyncOpenAI calls (same concurrency); shell: publish + wait; tool: supervisor turn end to end;")
        print("   fan-out: the broadcast tool call alone; SDK-floor: the openai client's own overhead;")
        print("   shell-SDK, tool-SDK: letta_cli's overhead on top of the same model calls")
        print()
        at = {r[0]: r for r in rows}
        if 100 in at:
            ratio("broadcast_100_shell_wall_seconds", at[100][4], 1.0, unit="s")
            ratio("broadcast_100_tool_wall_seconds", at[100][6], 1.0, unit="s")
            n, floor, _, sdk, shell, _, tool, _ = at[100]
            print(
                f"   (the bare SDK alone takes {sdk:.2f} s for the same 100 calls: of the shell path's {shell:.2f} s, "
                f"{floor:.2f} s is the floor, {sdk - floor:.2f} s the SDK client, {shell - sdk:.2f} s letta_cli; of the "
                f"tool path's {tool:.2f} s, {tool - sdk:.2f} s is letta_cli)"
            )
        return 0
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
