"""Shared helpers of the reliability suites (crash, concurrency, bad input, faults, security, soak).

- workspace set-up without paying a CLI start-up per agent (agent files written directly);
- the invariants every suite checks: every state file parses, no torn lines, no stray temp files, each
  message handled exactly once (counted in the agent's history) or dead-lettered with a reason;
- byte snapshots of a workspace, to prove a failed command changed nothing;
- EchoServer: a careless (or hostile) model endpoint that echoes the key it was sent in its 401;
- ForkCLI: the real `agents` entry point in a real child process, forked from a server that imported
  letta_cli once, so hundreds of bad-input cases cost milliseconds each instead of a Python start-up.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import Result

REPO = Path(__file__).resolve().parent.parent
CONFIG = 'version = 1\nmodel = "fake-model"\n[limits]\nretry_backoff = 0.05\nmodel_retries = 2\nmodel_timeout = 2\n'


# ------------------------------------------------------------------------------------------ workspace set-up


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_agent(
    ws: Path, name: str, *, tags: list[str] = (), shared: list[str] = (), blocks: dict | None = None, extra: str = ""
) -> Path:
    """agents.d/<name>.toml, written directly (what `agents create` would write, without its start-up cost)."""
    lines = ["version = 1", f"name = {toml_str(name)}"]
    if tags:
        lines.append(f"tags = [{', '.join(toml_str(t) for t in tags)}]")
    if extra:
        lines.append(extra.strip())
    lines.append("[memory]")
    lines.append(f"shared = [{', '.join(toml_str(s) for s in shared)}]")
    for label, value in (blocks or {}).items():
        lines.append(f"[memory.blocks.{label}]\nvalue = {toml_str(value)}")
    path = ws / "agents.d" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def workspace(ws: Path):
    """The library's view of a workspace (imported lazily: the test process never sets crash variables)."""
    from letta_cli.store.workspace import Workspace

    return Workspace(ws.resolve())


def publish(ws: Path, agent: str, body: str) -> str:
    """Publish one message from the test process (library call); returns its id."""
    from letta_cli.app import messaging as client

    [msg] = client.publish(workspace(ws), [agent], body)
    return msg.id


def shared_block(ws: Path, label: str, value: str = "", limit: int = 100_000) -> Path:
    from letta_cli.core.models import Block
    from letta_cli.store.blocks import BlockStore

    store = BlockStore(workspace(ws))
    store.create(Block(label=label, value=value, limit=limit))
    return store.path(label)


# --------------------------------------------------------------------------------------------- invariants


def history(ws: Path, agent: str) -> list[dict]:
    path = ws / ".agents" / "history" / f"{agent}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def user_turns(ws: Path, agent: str, content: str | None = None, contains: str | None = None) -> int:
    """How many turns of `agent` handled a message with this content (user entries of its history)."""
    n = 0
    for h in history(ws, agent):
        if h["role"] != "user":
            continue
        c = h.get("content") or ""
        if (content is not None and c == content) or (contains is not None and contains in c):
            n += 1
    return n


def queue_names(ws: Path, folder: str) -> list[str]:
    path = ws / ".agents" / "queue" / folder
    return sorted(os.listdir(path)) if path.is_dir() else []


def dead_reason(ws: Path, message_id: str) -> str | None:
    path = ws / ".agents" / "queue" / "dead" / f"{message_id}.error.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["error"]


def state_files(ws: Path) -> list[Path]:
    root = ws / ".agents"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def check_state(ws: Path, *, drained: bool = True, allow_corrupt: bool = False) -> None:
    """No half-written file anywhere: every JSON state file parses, every JSONL line parses (none torn),
    queue/tmp is empty after recovery, and (drained) nothing is left in new/ or cur/."""
    problems = []
    for path in state_files(ws):
        rel = path.relative_to(ws)
        if "corrupt" in rel.parts and allow_corrupt:
            continue
        if path.name.endswith(".json"):
            try:
                json.loads(path.read_bytes())
            except ValueError as exc:
                problems.append(f"{rel}: does not parse: {exc}")
        elif path.name.endswith(".jsonl"):
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                problems.append(f"{rel}: torn last line")
            for i, line in enumerate(data.splitlines()):
                try:
                    json.loads(line)
                except ValueError:
                    problems.append(f"{rel}:{i + 1}: line does not parse")
    if queue_names(ws, "tmp"):
        problems.append(f"queue/tmp not empty: {queue_names(ws, 'tmp')}")
    if drained:
        if queue_names(ws, "new"):
            problems.append(f"queue/new not empty: {queue_names(ws, 'new')}")
        if queue_names(ws, "cur"):
            problems.append(f"queue/cur not empty: {queue_names(ws, 'cur')}")
    assert not problems, "\n".join(problems)


def temp_leftovers(ws: Path) -> list[str]:
    """Temp files of atomic writes (`.tmp-<pid>-<hex>`) left anywhere under .agents/."""
    return [str(p.relative_to(ws)) for p in state_files(ws) if p.name.startswith(".tmp-")]


def one_line_error(res, code: int | None = None) -> None:
    """A user-caused error: non-zero exit, ONE line on stderr, no traceback, not an internal error."""
    assert res.code != 0, f"expected a failure, got exit 0 (stdout {res.out[:200]!r})"
    assert res.code > 0, f"killed by signal {-res.code}: {res.err[-500:]}"
    assert "Traceback" not in res.err, res.err[-2000:]
    assert res.code != 70 and "internal error" not in res.err, res.err
    lines = res.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {res.err[:1000]!r}"
    assert lines[0].startswith("agents: "), lines[0]
    if code is not None:
        assert res.code == code, f"exit {res.code}, expected {code}: {res.err}"


# ---------------------------------------------------------------------------------------------- snapshots


def snapshot(root: Path, ignore: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file's bytes under root (relative path -> bytes), except paths starting with an ignored prefix."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = str(path.relative_to(root))
            if not rel.startswith(ignore):
                out[rel] = path.read_bytes()
    return out


def diff(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    changes = [f"+ {k}" for k in after.keys() - before.keys()]
    changes += [f"- {k}" for k in before.keys() - after.keys()]
    changes += [f"~ {k}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(changes)


# --------------------------------------------------------------------------------------------- EchoServer


class EchoServer:
    """A careless or hostile endpoint: records every Authorization header and echoes it in a 401, after
    `pad` characters (to put the key across the cut of an error line)."""

    def __init__(self, pad: int = 0):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                auth = self.headers.get("Authorization", "")
                seen.append(auth)
                message = "x" * pad + f" Incorrect API key provided: {auth}"
                data = json.dumps({"error": {"message": message, "code": "invalid_api_key"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------ ForkCLI


_SERVER = r"""
import io, json, os, signal, sys, time, traceback
sys.path.insert(0, sys.argv[1])
import letta_cli.cli.main as entry   # the expensive imports happen once, here
try:
    import openai  # noqa: F401  (the model path's import, shared too)
except ImportError:
    pass
requests = os.fdopen(0, "rb", buffering=0)
answers = os.fdopen(1, "wb", buffering=0)
line = b""
while True:
    chunk = requests.read(1)
    if not chunk:
        break
    if chunk != b"\n":
        line += chunk
        continue
    req, line = json.loads(line), b""
    pid = os.fork()
    if pid == 0:
        code = 97
        try:
            os.setsid()
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            fd = os.open(req["stdin"], os.O_RDONLY)
            os.dup2(fd, 0)
            for n, name in ((1, req["stdout"]), (2, req["stderr"])):
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(fd, n)
            sys.stdin = open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False)
            sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
            sys.argv = ["agents", *req["argv"]]
            try:
                entry.run(req["argv"])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    deadline = time.monotonic() + req["timeout"]
    status = None
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = "timeout"
            break
        time.sleep(0.002)
    answers.write(json.dumps({"code": status}).encode() + b"\n")
"""


class ForkCLI:
    """Runs `agents ARGS` in a fresh process forked from a pre-imported server (no threads in it)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.dir = Path(tempfile.mkdtemp(prefix="forkcli-"))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(REPO)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**env, "PYTHONPATH": str(REPO)},
        )
        self.n = 0

    def __call__(
        self,
        *args: str,
        cwd: Path | None = None,
        input: bytes | str | None = None,
        env: dict | None = None,
        timeout: float = 60,
    ) -> Result:
        self.n += 1
        stdin, stdout, stderr = (self.dir / f"{self.n}.{s}" for s in ("in", "out", "err"))
        stdin.write_bytes(input.encode() if isinstance(input, str) else (input or b""))
        req = {
            "argv": list(args),
            "cwd": str(cwd or self.dir),
            "env": {**self.env, **(env or {})},
            "stdin": str(stdin),
            "stdout": str(stdout),
            "stderr": str(stderr),
            "timeout": timeout,
        }
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout + 30)
        assert ready, "the fork server did not answer"
        answer = json.loads(self.proc.stdout.readline())
        code = answer["code"]
        assert code != "timeout", f"agents {' '.join(args)[:200]} did not finish within {timeout}s"
        res = Result(code, stdout.read_text(errors="replace"), stderr.read_text(errors="replace"))
        for p in (stdin, stdout, stderr):
            p.unlink()
        return res

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll a condition with a deadline (polling a file is fine; sleeping as synchronisation is not)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
