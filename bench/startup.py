"""Start-up: `agents list` on a 100-agent workspace, against `python -c pass` (the interpreter's floor) and a
minimal Typer app (one command printing a line: what a user would write instead).

All three run with the same interpreter (.venv/bin/python), output to a pipe, interleaved, many times; the
figures are medians. Wall time is what a user feels; CPU time (user + sys of the child, from wait4) is
shown too because it is less disturbed by other processes on a busy machine. A fourth row, importing the
CLI's modules without running a command, splits the gap into import cost and the command's own work.

    .venv/bin/python bench/startup.py [--reps 40] [--agents 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, clean_env, cleanup, header, make_workspace, median, ratio, scratch

MINIMAL_TYPER = """\
import typer

app = typer.Typer()


@app.command()
def hello() -> None:
    print("hello")


if __name__ == "__main__":
    app()
"""


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS KiB) of one run of argv, output discarded."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err.decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def import_times(argv: list[str], env: dict[str, str]) -> dict[str, int]:
    """Self time (us) of every module imported by one run, from -X importtime."""
    err = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, env=env).stderr
    out: dict[str, int] = {}
    for line in err.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cum, name = (part.strip() for part in line[len("import time:") :].split("|"))
            out[name] = int(self_us)
    return out


GROUPS = [  # (label, module prefixes), first match wins
    ("letta_cli.core.models + config (pydantic classes)", ("letta_cli.core.models", "letta_cli.core.config")),
    ("letta_cli other modules", ("letta_cli",)),
    (
        "asyncio/concurrent/ssl (via scheduler, client)",
        ("asyncio", "_asyncio", "concurrent", "ssl", "_ssl", "selectors"),
    ),
    ("rich (table output)", ("rich",)),
    ("pydantic", ("pydantic",)),
    ("other stdlib/third-party", ("",)),
]


def import_breakdown(agents: list[str], typer_app: list[str], env: dict[str, str], reps: int = 5) -> None:
    """Which imports `agents list` pays for beyond the minimal Typer app (medians of `reps` runs)."""
    totals: dict[str, list[float]] = {label: [] for label, _ in GROUPS}
    for _ in range(reps):
        a, t = import_times(agents, env), import_times(typer_app, env)
        sums = dict.fromkeys(totals, 0.0)
        for name, us in a.items():
            if name in t:
                continue
            for label, prefixes in GROUPS:
                if any(name == p or name.startswith(p + ".") or p == "" for p in prefixes):
                    sums[label] += us
                    break
        for label in totals:
            totals[label].append(sums[label])
    print(f"imports `agents list` adds to the Typer app's (-X importtime self times, median of {reps}):")
    for label, values in totals.items():
        print(f"    {label:<50} {median(values) / 1000:6.1f} ms")


def agents_argv() -> list[str]:
    """The installed console script (what users run), else the module."""
    script = Path(PY).parent / "agents"
    if script.exists():
        return [PY, str(script)]
    found = shutil.which("agents")
    return [PY, found] if found else [PY, "-m", "letta_cli"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=40, help="runs of each command (default 40)")
    ap.add_argument("--agents", type=int, default=100, help="agents in the workspace (default 100)")
    args = ap.parse_args()

    header(f"start-up: {args.reps} interleaved runs each, medians")
    work = scratch("startup")
    try:
        root = make_workspace(work / "ws", {f"agent-{i:03d}": ["team", f"t{i % 7}"] for i in range(args.agents)})
        app = work / "minimal_typer.py"
        app.write_text(MINIMAL_TYPER)
        env = clean_env()
        commands = {
            "python -c pass": [PY, "-c", "pass"],
            "minimal Typer app": [PY, str(app)],
            f"agents list ({args.agents} agents)": [*agents_argv(), "-w", str(root), "list"],
            "import letta_cli.cli.main": [PY, "-c", "import letta_cli.cli.main"],
        }
        for argv in commands.values():  # warm the page cache and .pyc files
            run_once(argv, env)
        results: dict[str, list[tuple[float, float, int]]] = {k: [] for k in commands}
        for _ in range(args.reps):
            for name, argv in commands.items():
                results[name].append(run_once(argv, env))
        print()
        print(f"{'command':<28} {'wall median':>12} {'wall min':>10} {'CPU median':>11} {'peak RSS':>10}")
        med = {}
        for name, rows in results.items():
            wall = median([r[0] for r in rows])
            cpu = median([r[1] for r in rows])
            med[name] = (wall, cpu)
            print(
                f"{name:<28} {wall * 1000:>9.1f} ms {min(r[0] for r in rows) * 1000:>7.1f} ms "
                f"{cpu * 1000:>8.1f} ms {max(r[2] for r in rows) / 1024:>7.1f} MB"
            )
        agents_key = list(commands)[2]
        _i_wall, i_cpu = med["import letta_cli.cli.main"]
        a_wall, a_cpu = med[agents_key]
        t_wall, t_cpu = med["minimal Typer app"]
        p_wall, _ = med["python -c pass"]
        print()
        print(
            f"agents list / python -c pass: {a_wall / p_wall:.1f}x wall; above the Typer app: "
            f"{(a_wall - t_wall) * 1000:.0f} ms wall, {(a_cpu - t_cpu) * 1000:.0f} ms CPU "
            f"(CPU ratio {a_cpu / t_cpu:.2f}x)"
        )
        print(
            f"of which importing the CLI's modules: {(i_cpu - t_cpu) * 1000:.0f} ms CPU more than the Typer app's "
            f"whole run; running `list` itself: {(a_cpu - i_cpu) * 1000:.0f} ms CPU"
        )
        import_breakdown(commands[agents_key], commands["minimal Typer app"], env)
        print()
        ratio("startup_agents_list_vs_minimal_typer", a_wall / t_wall, 1.5)
        return 0
    finally:
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
