"""One `agents` process as a script pays for it (issue #18): the installed command, process start and imports
included, against a minimal Typer app measured in the same run, interleaved.

  1. `agents send bob hi`, the model answering at once (the scripted server in its own process, delay 0), no
     scheduler started by the user: the first send starts the scheduler daemon, later ones find it ("warm",
     the goal's figure). Also shown: "cold" (the daemon stopped before every send, so each one starts it)
     and AGENTS_DAEMON=0 (the sender serves in-process, as before the daemon). And the floor for a send
     that makes its model call itself: `python -c "import openai"` in the same rounds.
  2. `agents broadcast --tags swarm go --json` to 100 agents whose model answers in 200 ms, against one
     `agents send w000 go` at 200 ms, in the same workspace, interleaved. Then the floor under that ratio:
     the openai SDK alone (bench/_bare_sdk.py, its own process, after its imports) making 1 and 100 calls
     with a real turn's request; one send plus what the 100 calls add is what a broadcast would take if
     everything of ours cost nothing.
  3. `agents list` on 100 agents (output to a pipe) against the minimal Typer app; `agents list --tag x` over
     10,000 agent files (one in ten tagged x), table to a pipe and --json.

Wall times are medians (what a user waits); CPU is the child's user + sys from wait4 (the daemon's own CPU is
not in it: it is another process, like a model server).

    .venv/bin/python bench/send.py [--reps 20] [--scale 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, agent_toml, clean_env, cleanup, header, make_workspace, median, ratio, scratch
from startup import MINIMAL_TYPER, agents_argv

HERE = Path(__file__).resolve().parent


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of argv; its output goes to a file (not a terminal, like a pipe)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(
                f"{' '.join(argv)} exited {proc.returncode}: {err.read().decode(errors='replace')[-2000:]}"
            )
    return wall, usage.ru_utime + usage.ru_stime


def start_server(delay: float, record: Path | None = None) -> tuple[subprocess.Popen, str]:
    argv = [PY, str(HERE / "_fakellm_server.py"), str(delay), *([str(record)] if record else [])]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        raise SystemExit("the fake model server did not start")
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def rounds(commands: dict[str, list[str]], envs: dict[str, dict[str, str]], reps: int, before=None):  # type: ignore[no-untyped-def]
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    for _ in range(reps):
        for name, argv in commands.items():
            if before is not None:
                before(name)
            results[name].append(run_once(argv, envs[name]))
    return results


def show(results: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    print(f"    {'command':<52} {'wall median':>11} {'wall min':>9} {'CPU median':>10}")
    walls = {}
    for name, rows in results.items():
        wall = median([r[0] for r in rows])
        walls[name] = wall
        cpu = median([r[1] for r in rows])
        print(f"    {name:<52} {wall * 1000:>8.0f} ms {min(r[0] for r in rows) * 1000:>6.0f} ms {cpu * 1000:>7.0f} ms")
    return walls


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="interleaved rounds (default 20)")
    ap.add_argument("--cold-reps", type=int, default=5, help="sends that each start the daemon (default 5)")
    ap.add_argument("--scale", type=int, default=10_000, help="agent files for list --tag x (default 10000)")
    ap.add_argument(
        "--bytecode",
        action="store_true",
        help="let Python cache bytecode (in a scratch PYTHONPYCACHEPREFIX), as on a user's machine; by default "
        "the environment is taken as it is (this box sets PYTHONDONTWRITEBYTECODE=1; scripts/setup.sh compiles the "
        "venv's bytecode at install, but not letta_cli's own, which is installed editable)",
    )
    args = ap.parse_args()

    header(f"one agents process (#18): {args.reps} interleaved rounds, medians")
    work = scratch("send")
    agents = agents_argv()
    env = clean_env()
    if args.bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    regime = (
        "bytecode cached"
        if args.bytecode
        else ("no bytecode cache (PYTHONDONTWRITEBYTECODE set)" if env.get("PYTHONDONTWRITEBYTECODE") else "as is")
    )
    print(f"   python bytecode: {regime}")
    servers: list[subprocess.Popen] = []
    try:
        app = work / "minimal_typer.py"
        app.write_text(MINIMAL_TYPER)
        typer_argv = [PY, str(app)]

        # --- 1. send at zero latency, and list on 100 agents
        fast, fast_url = start_server(0.0)
        servers.append(fast)
        team = {f"agent-{i:03d}": ["team", f"t{i % 7}"] for i in range(100)}
        ws = make_workspace(work / "ws0", {**team, "bob": ["solo"]}, base_url=fast_url)
        ws_off = make_workspace(work / "ws0-off", {"bob": ["solo"]}, base_url=fast_url)
        ws_cold = make_workspace(work / "ws0-cold", {"bob": ["solo"]}, base_url=fast_url)
        key = {**env, "OPENAI_API_KEY": "sk-bench-not-a-key"}
        commands = {
            "minimal Typer app": typer_argv,
            "agents send bob hi (daemon warm)": [*agents, "-w", str(ws), "send", "bob", "hi"],
            "agents list (100 agents)": [*agents, "-w", str(ws), "list"],
            "agents send bob hi (AGENTS_DAEMON=0)": [*agents, "-w", str(ws_off), "send", "bob", "hi"],
            "python -c 'import openai' (the SDK's import alone)": [PY, "-c", "import openai"],
        }
        envs = dict.fromkeys(commands, key)
        envs["agents send bob hi (AGENTS_DAEMON=0)"] = {**key, "AGENTS_DAEMON": "0"}
        for name, argv in commands.items():  # warm the page cache and .pyc files; the first send starts the daemon
            run_once(argv, envs[name])
        print("\n  1. zero-latency model")
        walls = show(rounds(commands, envs, args.reps))
        cold_cmd = {"agents send bob hi (cold: starts the daemon)": [*agents, "-w", str(ws_cold), "send", "bob", "hi"]}
        stop = [*agents, "-w", str(ws_cold), "stop"]
        cold = rounds(cold_cmd, dict.fromkeys(cold_cmd, key), args.cold_reps, before=lambda _n: run_once(stop, key))
        walls |= show(cold)
        run_once(stop, key)
        t = walls["minimal Typer app"]
        send_warm = walls["agents send bob hi (daemon warm)"]
        list100 = walls["agents list (100 agents)"]
        print(
            f"    send (AGENTS_DAEMON=0) / Typer: {walls['agents send bob hi (AGENTS_DAEMON=0)'] / t:.2f}x; "
            f"send (cold) / Typer: {walls[next(iter(cold_cmd))] / t:.2f}x"
        )
        sdk_import = walls["python -c 'import openai' (the SDK's import alone)"]
        print(
            f"    floor for a send that makes its model call itself (cold, or AGENTS_DAEMON=0): the Typer app + "
            f"importing the SDK = {(t + sdk_import) / t:.2f}x Typer (the import alone: {sdk_import / t:.2f}x)"
        )

        # --- 2. broadcast to 100 agents at 200 ms vs one send at 200 ms
        request = work / "request.json"  # the first turn's request, replayed by the bare SDK below
        slow, slow_url = start_server(0.2, request)
        servers.append(slow)
        swarm = {f"w{i:03d}": ["swarm"] for i in range(100)}
        ws_b = make_workspace(work / "ws-b", swarm, base_url=slow_url)
        ws_wide = make_workspace(work / "ws-b128", swarm, base_url=slow_url, limits={"concurrency": 128})

        def bcast_argv(folder: Path) -> list[str]:
            return [*agents, "-w", str(folder), "broadcast", "--tags", "swarm", "go", "--json"]

        b_cmds = {
            "agents send w000 go (200 ms model)": [*agents, "-w", str(ws_b), "send", "w000", "go"],
            "agents broadcast --tags swarm go --json (100 agents)": bcast_argv(ws_b),
            "the same, limits.concurrency = 128 (one wave)": bcast_argv(ws_wide),
        }
        b_envs = dict.fromkeys(b_cmds, key)
        for name, argv in b_cmds.items():
            run_once(argv, b_envs[name])
        print("\n  2. 200 ms model")
        b_walls = show(rounds(b_cmds, b_envs, max(3, args.reps // 2)))
        for folder in (ws_b, ws_wide):
            run_once([*agents, "-w", str(folder), "stop"], key)
        send1, bcast, bcast_wide = b_walls.values()
        print(f"    broadcast / send: {bcast / send1:.2f}x; with concurrency = 128: {bcast_wide / send1:.2f}x")
        bare = json.loads(
            subprocess.run(
                [PY, str(HERE / "_bare_sdk.py"), slow_url, str(request), "100", "--reps", str(max(3, args.reps // 2))],
                env=key, check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        floor = (send1 + bare["many"] - bare["one"]) / send1
        print(
            f"    the openai SDK alone, in one process after its imports, the first turn's request: 1 call "
            f"{bare['one'] * 1000:.0f} ms, 100 at once {bare['many'] * 1000:.0f} ms, "
            f"{bare['cpu_per_call'] * 1000:.2f} ms of CPU a call"
        )
        print(
            f"    floor: one send + what the SDK alone adds for 100 calls = {floor:.2f}x one send "
            "(a broadcast whose own work cost nothing)"
        )

        # --- 3. list --tag x over many agents
        ws_s = work / "ws-scale"
        (ws_s / "agents.d").mkdir(parents=True)
        (ws_s / "agents.toml").write_text('version = 1\nmodel = "fake-model"\n')
        for i in range(args.scale):
            tags = ["x", "all"] if i % 10 == 0 else ["all", f"g{i % 50}"]
            (ws_s / "agents.d" / f"a{i:05d}.toml").write_text(agent_toml(f"a{i:05d}", tags, description=f"agent {i}"))
        s_cmds = {
            f"agents list --tag x ({args.scale:,} agents, table)": [*agents, "-w", str(ws_s), "list", "--tag", "x"],
            f"agents list --tag x --json ({args.scale:,} agents)": [
                *agents,
                "-w",
                str(ws_s),
                "list",
                "--tag",
                "x",
                "--json",
            ],
        }
        s_envs = dict.fromkeys(s_cmds, key)
        for name, argv in s_cmds.items():
            run_once(argv, s_envs[name])
        print(f"\n  3. {args.scale:,} agents")
        s_walls = show(rounds(s_cmds, s_envs, max(3, args.reps // 4)))
        table_s = max(s_walls.values())

        print()
        ratio("send_warm_daemon_vs_minimal_typer", send_warm / t, 2.0)
        ratio("broadcast100_vs_send1_200ms", bcast / send1, 1.3)
        print(f"      (floor under it in this run, the SDK's own cost: {floor:.2f}x)")
        ratio("list100_vs_minimal_typer", list100 / t, 1.3)
        ratio(f"list_tag_x_{args.scale}_seconds", table_s, 1.0, unit=" s")
        return 0
    finally:
        for proc in servers:
            stop_server(proc)
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
