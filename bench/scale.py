"""Scale: a workspace of 10,000 agent files (one in ten tagged x).

  * `agents list --tag x` as a CLI process (table to a pipe, and --json): wall time, CPU and peak RSS;
  * resolving a broadcast's recipients in-process, AgentStore(ws).matching(["x"]) - what `agents broadcast`
    and the send_message_to_agents_matching_all_tags tool do - cold (first call in a fresh process: every
    file parsed and validated) and warm (second call: the mtime cache, one stat a file);

against the floor of touching every file (listdir + read every file, in a fresh process), against parsing
them all with tomllib (the least any TOML-based store must do), and against what a user might type instead
(`grep -rlF '"x"' agents.d`). Peak memory is the child's ru_maxrss from wait4. "Cold" means a fresh process
with an empty parse cache; the OS page cache is warm (dropping it needs root and disturbs other work).

    .venv/bin/python bench/scale.py [--agents 10000] [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, REPO, agent_toml, clean_env, cleanup, header, median, ratio, scratch
from startup import agents_argv

MATCH_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from letta_cli.store.agents import AgentStore
from letta_cli.store.workspace import Workspace
t1 = time.perf_counter()
store = AgentStore(Workspace.find(sys.argv[1]))
cold = store.matching(["x"])
t2 = time.perf_counter()
warm = store.matching(["x"])
t3 = time.perf_counter()
assert len(cold.agents) == len(warm.agents) and not cold.errors, (len(cold.agents), cold.errors[:3])
print(json.dumps({"import": t1 - t0, "cold": t2 - t1, "warm": t3 - t2, "matched": len(cold.agents)}))
"""

FLOOR_SCRIPT = """
import json, os, sys, time
t0 = time.perf_counter()
d = sys.argv[1]
n = 0
for name in os.listdir(d):
    if name.endswith(".toml"):
        with open(os.path.join(d, name), "rb") as fh:
            n += len(fh.read())
t1 = time.perf_counter()
print(json.dumps({"read": t1 - t0, "bytes": n}))
"""

TOMLLIB_SCRIPT = """
import json, os, sys, time, tomllib
t0 = time.perf_counter()
d = sys.argv[1]
hits = 0
for name in os.listdir(d):
    if name.endswith(".toml"):
        with open(os.path.join(d, name), "rb") as fh:
            hits += "x" in tomllib.load(fh).get("tags", [])
t1 = time.perf_counter()
print(json.dumps({"parse": t1 - t0, "matched": hits}))
"""


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, bytes]:
    """(wall s, CPU s, peak RSS MB, stdout) of one child: CPU and RSS are the child's own, from wait4."""
    import threading

    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        chunks[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    for t in readers:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        _fail(argv, proc.returncode, chunks.get("err", b""))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, chunks.get("out", b"")


def _fail(argv: list[str], code: int, err: bytes):
    raise SystemExit(f"{' '.join(argv)} exited {code}: {err.decode(errors='replace')[-2000:]}")


def make_big_workspace(root: Path, n: int) -> None:
    d = root / "agents.d"
    d.mkdir(parents=True)
    (root / "agents.toml").write_text("version = 1\n")
    for i in range(n):
        name = f"agent-{i:05d}"
        tags = ["fleet", f"shard-{i % 16}"] + (["x"] if i % 10 == 0 else [])
        text = agent_toml(
            name,
            tags,
            description=f"Worker {i} of the fleet; handles shard {i % 16}.",
            blocks={"persona": f"I am worker {i}."},
        )
        (d / f"{name}.toml").write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=10_000, help="agent files (default 10000)")
    ap.add_argument("--reps", type=int, default=5, help="runs of each measurement, interleaved (default 5)")
    args = ap.parse_args()

    header(f"scale: {args.agents:,} agent files, {args.reps} interleaved runs each, medians")
    work = scratch("scale")
    try:
        root = work / "ws"
        t = time.perf_counter()
        make_big_workspace(root, args.agents)
        print(
            f"   created {args.agents:,} agent files in {time.perf_counter() - t:.1f} s "
            f"({sum(p.stat().st_size for p in (root / 'agents.d').iterdir()) / 1e6:.1f} MB)"
        )
        env = {**clean_env(), "PYTHONPATH": str(REPO)}
        agents_dir = str(root / "agents.d")
        expected = (args.agents + 9) // 10
        cmds = {
            "agents list --tag x": [*agents_argv(), "-w", str(root), "list", "--tag", "x"],
            "agents list --tag x --json": [*agents_argv(), "-w", str(root), "list", "--tag", "x", "--json"],
            "AgentStore.matching (child)": [PY, "-c", MATCH_SCRIPT, str(root)],
            "floor: listdir + read all": [PY, "-c", FLOOR_SCRIPT, agents_dir],
            "tomllib parse all": [PY, "-c", TOMLLIB_SCRIPT, agents_dir],
            "grep -rlF '\"x\"' agents.d": ["grep", "-rlF", '"x"', agents_dir],
        }
        rows: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cmds}
        inner: dict[str, list[float]] = {"import": [], "cold": [], "warm": [], "read": [], "parse": []}
        for rep in range(args.reps + 1):  # the first round only warms caches
            for name, argv in cmds.items():
                wall, cpu, rss, out = run_measured(argv, env)
                if rep == 0:
                    if name == "agents list --tag x --json":
                        assert len(json.loads(out)) == expected, "wrong match count"
                    continue
                rows[name].append((wall, cpu, rss))
                if out.startswith(b"{"):
                    for k, v in json.loads(out).items():
                        if k in inner:
                            inner[k].append(v)
        print()
        print(f"{'measurement':<32} {'wall':>9} {'CPU':>9} {'peak RSS':>10}")
        med = {}
        for name, values in rows.items():
            wall, cpu, rss = median([v[0] for v in values]), median([v[1] for v in values]), max(v[2] for v in values)
            med[name] = (wall, cpu, rss)
            print(f"{name:<32} {wall * 1000:>6.0f} ms {cpu * 1000:>6.0f} ms {rss:>7.1f} MB")
        print()
        print("inside the processes (in-process timers, medians):")
        print(
            f"   AgentStore.matching cold  {median(inner['cold']) * 1000:7.0f} ms   "
            f"(+ import {median(inner['import']) * 1000:.0f} ms)"
        )
        print(f"   AgentStore.matching warm  {median(inner['warm']) * 1000:7.0f} ms")
        print(f"   floor: read all files     {median(inner['read']) * 1000:7.0f} ms")
        print(f"   tomllib parse all files   {median(inner['parse']) * 1000:7.0f} ms")
        cold = median(inner["cold"])
        print(
            f"   cold matching / tomllib parse: {cold / median(inner['parse']):.1f}x; "
            f"/ raw read: {cold / median(inner['read']):.1f}x"
        )
        print()
        wall, _, rss = med["agents list --tag x"]
        jwall, _, jrss = med["agents list --tag x --json"]
        ratio("scale_list_tag_seconds", wall, 1.0, unit="s")
        ratio("scale_list_tag_json_seconds", jwall, 1.0, unit="s")
        ratio("scale_list_tag_peak_rss_mb", max(rss, jrss), 200, unit="MB")
        ratio("scale_matching_cold_seconds", cold, 1.0, unit="s")
        ratio("scale_matching_child_peak_rss_mb", med["AgentStore.matching (child)"][2], 200, unit="MB")
        return 0
    finally:
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
