"""The openai SDK alone, as the scheduler calls it (AsyncOpenAI, the request as extra_body): the floor under
a broadcast. Runs in its own process, after its imports, against the benchmark's model server.

    python bench/_bare_sdk.py URL BODY.json N [--reps R] [--aiohttp]

BODY.json is a real turn's request as the server received it (bench/_fakellm_server.py RECORD). Prints one
JSON line: the median wall seconds of 1 call and of N concurrent calls, and the CPU seconds per call of the
N-call rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any


async def rounds(url: str, body: dict[str, Any], n: int, reps: int, aiohttp: bool) -> dict[str, float]:
    from openai import AsyncOpenAI, DefaultAioHttpClient

    # as many clients as letta_cli's ModelClient opens for n requests in flight (one per 16, at most 8): one
    # client's connection pool costs more per request the more requests it has in flight
    def client() -> AsyncOpenAI:
        extra = {"http_client": DefaultAioHttpClient()} if aiohttp else {}
        return AsyncOpenAI(api_key="sk-bench-not-a-key", base_url=url, max_retries=0, **extra)  # type: ignore[arg-type]

    apis = [client() for _ in range(min(8, -(-n // 16)))]
    model = body.pop("model", "fake-model")

    async def one(i: int) -> None:
        request = {**body, "messages": [*body["messages"][:-1], {"role": "user", "content": f"go {i}"}]}
        await apis[i % len(apis)].chat.completions.create(model=model, messages=[], extra_body=request)

    await asyncio.gather(*(one(i) for i in range(n)))  # connections open, code warm
    single, many, cpu = [], [], []
    for _ in range(reps):
        started = time.perf_counter()
        await one(0)
        single.append(time.perf_counter() - started)
        started, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(n)))
        many.append(time.perf_counter() - started)
        cpu.append((time.process_time() - cpu0) / n)
    for api in apis:
        await api.close()
    return {"one": statistics.median(single), "many": statistics.median(many), "cpu_per_call": statistics.median(cpu)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("body", type=Path)
    ap.add_argument("n", type=int)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--aiohttp", action="store_true", help="the SDK's aiohttp transport (needs openai[aiohttp])")
    args = ap.parse_args()
    body = json.loads(args.body.read_text())
    print(json.dumps(asyncio.run(rounds(args.url, body, args.n, args.reps, args.aiohttp))))


if __name__ == "__main__":
    main()
