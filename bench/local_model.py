"""The embedded local model (SmolLM2-135M on llama.cpp, 2 CPU cores): how long the demo and the README's
"taste" commands take, and how much of each prompt the server actually evaluates.

Every model call's usage carries `prompt_tokens_details.cached_tokens` (model/llama_server.py): the prompt
tokens the server did not evaluate because it had evaluated that prefix before (its RAM prompt cache, or the
prompt it evaluated last). The trace records it per call, so evaluated = prompt_tokens - cached_tokens.

    .venv/bin/python bench/local_model.py                 # the demo, then the taste commands
    .venv/bin/python bench/local_model.py --only demo     # or --only taste
    .venv/bin/python bench/local_model.py --threads 2     # LETTA_CLI_MODEL_THREADS for the server
    .venv/bin/python bench/local_model.py --gguf "$(.venv/bin/agents model path)" --threads 1
                                                          # the server as before the Q8_0 copy and free-CPU threads
    .venv/bin/python bench/local_model.py --busy 1        # with one process spinning on a core beside it

Run it under `flock /tmp/letta-cpu.lock` on a shared machine; it prints the load average before and after,
since other busy processes slow the model down several times over.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, REPO, clean_env, cleanup, header, ratio, read_trace, scratch

ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")
# The README's "A taste" section, as typed (the jq pipes are left out: they only reformat the output).
TASTE = [
    ["init", "my-team"],
    ["blocks", "create", "plan", "--value", "Ship v1 on Friday."],
    ["create", "boss", "-t", "lead", "--shared", "plan", "--first-tool", "send_message_to_agents_matching_all_tags"],
    ["create", "ana", "-t", "worker", "--shared", "plan", "--memory", "persona=I test things"],
    ["create", "bo", "-t", "worker", "--shared", "plan", "--memory", "persona=I write docs"],
    ["broadcast", "--tags", "worker", "Status?", "--json"],
    ["send", "boss", "Ask the workers what blocks the release, then sum up."],
    ["trace", "--last"],
    ["usage"],
    ["send", "ana", "-", "--json"],  # stdin: "review this"
]


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def env(server: dict[str, str]) -> dict[str, str]:
    return {**clean_env(), **server}


def calls_of(root: Path) -> list[dict]:
    return [e for e in read_trace(root) if e.get("event") == "model_call"]


def token_report(root: Path, title: str) -> float:
    """Per turn: prompt tokens sent and evaluated; returns the share evaluated over all of them."""
    calls = calls_of(root)
    turns: dict[str, list[dict]] = {}
    for c in calls:
        turns.setdefault(c["message_id"], []).append(c)
    print(f"\n{title}: tokens per turn (prompt sent / evaluated by the server; answer written), in order")
    print(f"   {'agent':<11} {'calls':>5} {'sent':>6} {'evaluated':>9} {'share':>6} {'written':>7} {'model s':>8}")
    for group in turns.values():
        sent = sum(c["prompt_tokens"] for c in group)
        evaluated = sum(c["prompt_tokens"] - c.get("cached_tokens", 0) for c in group)
        written = sum(c.get("completion_tokens", 0) for c in group)
        secs = sum(c["duration_ms"] for c in group) / 1000
        share = evaluated / sent if sent else 0.0
        print(
            f"   {group[0]['agent']:<11} {len(group):>5} {sent:>6} {evaluated:>9} {share:>6.0%} {written:>7} {secs:>8.1f}"
        )
    sent = sum(c["prompt_tokens"] for c in calls)
    evaluated = sum(c["prompt_tokens"] - c.get("cached_tokens", 0) for c in calls)
    first: dict[str, int] = {}
    first_sent: dict[str, int] = {}
    for c in calls:
        first.setdefault(c["agent"], c["prompt_tokens"] - c.get("cached_tokens", 0))
        first_sent.setdefault(c["agent"], c["prompt_tokens"])
    later_sent, later_evaluated = sent - sum(first_sent.values()), evaluated - sum(first.values())
    print(
        f"   total: {len(calls)} model calls, {sent} prompt tokens sent, {evaluated} evaluated "
        f"({evaluated / max(sent, 1):.0%}); of these, {sum(first.values())} in each agent's first call "
        f"(what each does not share with the agents that ran before it); after them: {later_evaluated} of {later_sent} "
        f"({later_evaluated / max(later_sent, 1):.0%}); {sum(c.get('completion_tokens', 0) for c in calls)} tokens written"
    )
    return evaluated / max(sent, 1)


def entities(root: Path) -> int:
    replies = [r for e in read_trace(root) if e.get("event") == "turn_end" for r in e.get("reply") or []]
    return sum(1 for r in replies if ENTITY.search(r))


def bench_demo(server: dict[str, str]) -> list[bool]:
    folder = scratch("local-demo")
    root = folder / "demo"
    print(f"\n-- agents demo (load average before: {load()})")
    started = time.monotonic()
    proc = subprocess.run(
        [PY, "-m", "letta_cli", "demo", "--dir", str(root)], cwd=REPO, env=env(server), capture_output=True, text=True
    )
    wall = time.monotonic() - started
    summary = [line for line in proc.stdout.splitlines() if "checks passed" in line or "NOT DONE" in line]
    print(f"   exit {proc.returncode}, {wall:.1f} s wall (load average after: {load()})")
    for line in summary:
        print(f"   {line.strip()}")
    if proc.returncode != 0:
        print(proc.stderr[-2000:])
    share = token_report(root, "demo")
    bad = entities(root)
    ok = [
        ratio("local_demo_wall_s", wall, 90, unit=" s", digits=1),
        ratio("local_demo_evaluated_share", share, 0.25, unit="", digits=2),
        ratio("local_demo_html_entities", bad, 0, unit="", digits=0),
    ]
    cleanup(folder)
    return ok


def bench_taste(server: dict[str, str]) -> list[bool]:
    folder = scratch("local-taste")
    print(f"\n-- the README's taste commands, model chosen by default (load average before: {load()})")
    cwd = folder
    times: list[tuple[str, float]] = []
    for args in TASTE:
        started = time.monotonic()
        proc = subprocess.run(
            [PY, "-m", "letta_cli", *args],
            cwd=cwd,
            env=env(server),
            input="review this" if "-" in args else None,
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - started
        times.append((" ".join(args), took))
        status = "" if proc.returncode == 0 else f"  (exit {proc.returncode}: {proc.stderr.strip()[:200]})"
        print(f"   {took:6.1f} s  agents {' '.join(args)}{status}")
        if args[0] == "init":
            cwd = folder / "my-team"
    root = folder / "my-team"
    subprocess.run([PY, "-m", "letta_cli", "model", "stop"], cwd=root, env=env(server), capture_output=True)
    print(f"   (load average after: {load()})")
    token_report(root, "taste")
    worst = max(t for _, t in times)
    ok = [ratio("local_taste_slowest_command_s", worst, 20, unit=" s", digits=1)]
    cleanup(folder)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["demo", "taste"])
    parser.add_argument("--threads", type=int, help="LETTA_CLI_MODEL_THREADS for the server (default: its own)")
    parser.add_argument("--gguf", help="LETTA_CLI_GGUF: serve this file as it is (default: the packaged weights' copy)")
    parser.add_argument("--busy", type=int, default=0, help="processes spinning on a CPU each, beside the benchmark")
    args = parser.parse_args()
    hogs = [subprocess.Popen([PY, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        return run(args)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def run(args: argparse.Namespace) -> int:
    server = {"LETTA_CLI_MODEL_THREADS": str(args.threads)} if args.threads else {}
    if args.gguf:
        server["LETTA_CLI_GGUF"] = args.gguf
    header("local model: demo and taste commands on SmolLM2-135M")
    cpus = len(os.sched_getaffinity(0))
    print(
        f"   threads: {args.threads or 'default'}; weights: {args.gguf or 'default'}; cpus: {cpus}; busy: {args.busy}"
    )
    ok: list[bool] = []
    if args.only in (None, "demo"):
        ok += bench_demo(server)
    if args.only in (None, "taste"):
        ok += bench_taste(server)
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
