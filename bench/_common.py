"""Shared helpers for the benchmarks: the physical baseline (one atomic durable write), workspaces, timing
and the final ratio line.

Every benchmark measures its baseline in the same run as the thing it compares, interleaved in rounds where
the run is long, because these machines are noisy. Nothing here replaces library code: the benchmarks call
letta_cli itself.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests.fakellm, and letta_cli when not installed

PY = sys.executable


# ------------------------------------------------------------------------------------------ temp space


def scratch(name: str) -> Path:
    """A fresh folder on the disk the benchmark is about ($BENCH_TMPDIR, else the system temp folder)."""
    base = os.environ.get("BENCH_TMPDIR") or None
    return Path(tempfile.mkdtemp(prefix=f"letta-bench-{name}-", dir=base))


def cleanup(path: Path) -> None:
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------ the physical baseline


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_durable_write(directory: str, name: str, data: bytes) -> None:
    """The least a crash-safe file write can cost: write + fsync + rename + fsync of the folder."""
    tmp = os.path.join(directory, f".tmp-{name}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(directory, name))
    _fsync_dir(directory)


def measure_raw_writes(directory: Path, n: int, data: bytes, tag: str = "") -> float:
    """Total seconds for n raw durable writes of `data` into `directory`."""
    d = str(directory)
    os.makedirs(d, exist_ok=True)
    started = time.perf_counter()
    for i in range(n):
        raw_durable_write(d, f"{tag}{i}.json", data)
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------ workspaces


def agent_toml(name: str, tags: list[str], *, description: str = "", blocks: dict[str, str] | None = None) -> str:
    lines = ["version = 1", f'name = "{name}"', f"tags = {json.dumps(tags)}"]
    if description:
        lines.append(f"description = {json.dumps(description)}")
    for label, value in (blocks or {}).items():
        lines += ["", f"[memory.blocks.{label}]", f"value = {json.dumps(value)}"]
    return "\n".join(lines) + "\n"


def make_workspace(
    root: Path,
    agents: dict[str, list[str]],
    *,
    base_url: str | None = None,
    model: str = "fake-model",
    limits: dict[str, object] | None = None,
    blocks: dict[str, str] | None = None,
) -> Path:
    """A workspace with one agents.d/<name>.toml per agent (plain writes: a fixture, not the thing measured)."""
    (root / "agents.d").mkdir(parents=True, exist_ok=True)
    cfg = ["version = 1", f'model = "{model}"']
    if base_url:
        cfg.append(f'base_url = "{base_url}"')
    if limits:
        cfg.append("[limits]")
        cfg += [f"{k} = {json.dumps(v)}" for k, v in limits.items()]
    (root / "agents.toml").write_text("\n".join(cfg) + "\n")
    for name, tags in agents.items():
        (root / "agents.d" / f"{name}.toml").write_text(agent_toml(name, tags, blocks=blocks))
    return root


def clean_env() -> dict[str, str]:
    """The environment for child processes: no user model settings leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTS_", "LETTA_CLI_"))}
    env["NO_COLOR"] = "1"
    return env


def read_trace(ws_root: Path) -> list[dict]:
    path = ws_root / ".agents" / "trace.jsonl"
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


# ---------------------------------------------------------------------------------------------- output


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = "?"
    try:
        probe = os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir()
        fs = subprocess.run(["df", "-T", probe], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    except Exception:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}, temp fs {fs}"


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   machine: {machine()}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} us"


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(name: str, value: float, target: float, *, at_most: bool = True, unit: str = "x", digits: int = 2) -> bool:
    """Print the one line a reader (or run_all.sh) looks for: RATIO <name> = <value> (target ...) MET|MISSED."""
    ok = value <= target if at_most else value >= target
    op = "<=" if at_most else ">="
    print(f"RATIO {name} = {value:.{digits}f}{unit} (target {op} {target:g}{unit}) {'MET' if ok else 'MISSED'}")
    return ok


# ---------------------------------------------------------------------------------------- the fake model


def start_fakellm():
    """The scripted test server (tests/fakellm.py), with Nagle's algorithm off on its sockets.

    Its handler writes the headers and the body in two send() calls; with Nagle on, the second waits for
    the client's delayed ACK, a ~40 ms stall per request that has nothing to do with letta_cli (measured:
    ~49 ms vs ~7.5 ms per SDK call on the reference machine). Turning it off makes "zero latency" mean zero.
    """
    import http.server

    from tests.fakellm import FakeLLM

    http.server.BaseHTTPRequestHandler.disable_nagle_algorithm = True
    llm = FakeLLM()
    llm.start()
    return llm
