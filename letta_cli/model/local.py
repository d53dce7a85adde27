"""The embedded local model: SmolLM2-135M-Instruct, served by llama.cpp's OpenAI-compatible server.

One server per workspace, started on demand and left running in its own session, so later commands reuse it.
Its record (`.agents/model-server.json`) says where it listens; its output goes to `.agents/model-server.log`.
Nothing here imports llama_cpp: the server runs as `python -m letta_cli.model.llama_server` (llama-cpp-python's
server with our chat handler) in a separate process, with the command line model/llama_command.py builds;
what is installed is looked up in model/local_setup.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from letta_cli.core.errors import Conflict, InvalidFile
from letta_cli.core.ids import now
from letta_cli.core.pids import pid_alive
from letta_cli.model.llama_command import LAUNCHER, served_weights, server_command, server_env
from letta_cli.model.local_setup import LocalModelError, check_installed
from letta_cli.store.fsio import atomic_write_json, locked, storage_errors
from letta_cli.store.workspace import Workspace

LOCAL_MODEL = "local"  # what an agent writes as its model to use the embedded one
START_TIMEOUT = 120.0  # seconds to wait for the server to answer
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL


class ServerInfo(BaseModel):
    """`.agents/model-server.json`: the running server of this workspace."""

    version: int = 1
    pid: int
    port: int
    base_url: str  # http://127.0.0.1:PORT/v1, for the openai SDK
    model: str  # the name to send as `model`
    gguf: str
    started_at: datetime = Field(default_factory=now)
    ready: bool = Field(False, exclude=True)  # loaded and listening, checked just now (not stored)


# --- the record ------------------------------------------------------------------------------------------


def record_path(ws: Workspace) -> Path:
    return ws.state_dir / "model-server.json"


def log_path(ws: Workspace) -> Path:
    return ws.state_dir / "model-server.log"


def _lock_path(ws: Workspace) -> Path:
    return ws.state_dir / "model-server.lock"


def _read_record(ws: Workspace) -> ServerInfo | None:
    path = record_path(ws)
    try:
        return ServerInfo.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError:
        raise InvalidFile(f"{path}: not a model-server record; stop the server it names, then delete it") from None


def _write_record(ws: Workspace, info: ServerInfo) -> None:
    atomic_write_json(record_path(ws), info.model_dump(mode="json"))


def _remove_record(ws: Workspace) -> None:
    with contextlib.suppress(FileNotFoundError):
        record_path(ws).unlink()


# --- processes -------------------------------------------------------------------------------------------

_children: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started, so it can reap them


def _is_server(pid: int) -> bool:
    """The pid runs (not a zombie) and, where /proc tells, is our model server (not a reused pid)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    if not pid_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust the signal check
    return state != "Z" and (LAUNCHER.encode() in cmdline or b"llama_cpp.server" in cmdline)


def _answers(base_url: str, timeout: float = 2.0) -> bool:
    """GET /v1/models answers, or was accepted and waits its turn: llama.cpp runs one request at a time,
    this one included, so a busy server is a working one. Proxies are bypassed: the server is on 127.0.0.1."""
    import urllib.request  # imported here: it pulls in ssl, and start-up should not pay for that

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{base_url}/models", timeout=timeout) as response:
            return response.status == 200 and "data" in json.load(response)
    except TimeoutError:  # connected and sent, no answer yet: queued behind a completion
        return True
    except (OSError, ValueError):  # refused (not listening yet), HTTP errors, bad JSON
        return False


def _listening(port: int) -> bool:
    """The port accepts connections. llama_cpp.server loads the model before it listens, so this means ready,
    without queueing behind a running completion as any HTTP request would."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise Conflict(f"port {port} on 127.0.0.1 is in use; choose another with --port") from None


def log_tail(ws: Workspace, lines: int = 8) -> str:
    """The last non-empty lines of the server's log ("" if there is none, or it is not a regular file: a
    symbolic link planted there is never followed, so no other file's text can end up in an error message)."""
    try:
        fd = os.open(log_path(ws), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # missing, or a symbolic link (ELOOP)
        return ""
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return ""
        text = f.read().decode("utf-8", errors="replace")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _spawn(ws: Workspace, gguf: Path, port: int, *, detached: bool) -> subprocess.Popen[bytes]:
    ws.ensure_state()
    path = log_path(ws)
    with storage_errors(str(path)):  # a symbolic link planted there: one clear line, never written through
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with open(fd, "wb") as log:
        return subprocess.Popen(
            server_command(gguf, port, ws.state_dir),
            stdin=subprocess.DEVNULL,
            stdout=log if detached else None,
            stderr=subprocess.STDOUT if detached else None,
            cwd=ws.state_dir,
            env=server_env(),
            start_new_session=detached,
        )


def _start(ws: Workspace, port: int | None, *, detached: bool) -> tuple[ServerInfo, subprocess.Popen[bytes]]:
    """Spawn the server and record it (the caller holds the lock)."""
    gguf = check_installed()
    if port is None:
        port = _free_port()
    else:
        _check_port(port)
    proc = _spawn(ws, gguf, port, detached=detached)
    _children[proc.pid] = proc
    served, _ = served_weights(gguf)
    info = ServerInfo(
        pid=proc.pid, port=port, base_url=f"http://127.0.0.1:{port}/v1", model=served.stem, gguf=str(served)
    )
    _write_record(ws, info)
    return info, proc


def _reap(child: subprocess.Popen[bytes]) -> int | None:
    """The exit code of a child that has just been seen gone (a zombie until reaped), or None."""
    try:
        return child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return child.poll()


def _wait_ready(ws: Workspace, info: ServerInfo, timeout: float) -> ServerInfo:
    """Poll until the server answers; if it dies or hangs, clean up and say why with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(info.base_url):
            info.ready = True
            return info
        if not _is_server(info.pid):
            _remove_record(ws)
            child = _children.pop(info.pid, None)
            returncode = _reap(child) if child is not None else None
            code = f" with code {returncode}" if returncode is not None else ""
            raise LocalModelError(f"the local model server exited{code} while starting; {_tail_hint(ws)}")
        time.sleep(0.1)
    _terminate(info.pid)
    _remove_record(ws)
    raise LocalModelError(f"the local model server did not answer within {timeout:g}s; {_tail_hint(ws)}")


def _tail_hint(ws: Workspace) -> str:
    tail = log_tail(ws, 5)
    where = f"see {log_path(ws)}"
    return f"{where}:\n{tail}" if tail else where


def _terminate(pid: int) -> None:
    """SIGTERM the server, SIGKILL it if it lingers, and reap it if it is our child."""
    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        if not _is_server(pid):
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _is_server(pid):
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)


# --- the verbs -------------------------------------------------------------------------------------------


def status(ws: Workspace) -> ServerInfo | None:
    """The workspace's server if its process runs (`ready`: it accepts connections, so it has loaded the
    model), else None. A record whose process is gone is removed; a process still loading is reported."""
    info = _read_record(ws)
    if info is None:
        return None
    if not _is_server(info.pid):
        _remove_record(ws)
        _children.pop(info.pid, None)
        return None
    info.ready = _listening(info.port)
    return info


def serve(ws: Workspace, *, port: int | None = None, wait: bool = True, timeout: float = START_TIMEOUT) -> ServerInfo:
    """Start the workspace's server in the background, or return the one already running.

    Two processes calling this at once get one server (a file lock serialises them). With `wait`, return
    once it answers (within `timeout` seconds) or raise LocalModelError with the tail of its log.
    """
    ws.ensure_state()
    with locked(_lock_path(ws)):
        info = status(ws)
        if info is not None and port is not None and port != info.port:
            raise Conflict(f"the local model already runs on port {info.port}; stop it first (agents model stop)")
        if info is None:
            info, _ = _start(ws, port, detached=True)
        if wait and not info.ready:
            _wait_ready(ws, info, timeout)
        return info


def serve_foreground(
    ws: Workspace, *, port: int | None = None, on_start: Callable[[ServerInfo], None] | None = None
) -> int:
    """Run the server attached to this terminal until it exits or Ctrl-C; return its exit code.

    `on_start` gets the record once the process is spawned (before it answers).
    """
    ws.ensure_state()
    with locked(_lock_path(ws)):
        running = status(ws)
        if running is not None:
            raise Conflict(f"the local model already runs (pid {running.pid}, {running.base_url}); stop it first")
        info, proc = _start(ws, port, detached=False)
    try:
        if on_start is not None:
            on_start(info)
        return proc.wait()
    except KeyboardInterrupt:  # the server got the same SIGINT: give it time to shut down cleanly
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _terminate(info.pid)
        return 130
    finally:
        _children.pop(info.pid, None)
        with locked(_lock_path(ws)):
            current = _read_record(ws)
            if current is not None and current.pid == info.pid:
                _remove_record(ws)


def stop(ws: Workspace) -> bool:
    """Stop the workspace's server (SIGTERM, then SIGKILL) and remove its record. False if none ran."""
    if not record_path(ws).exists():
        return False
    with locked(_lock_path(ws)):
        info = _read_record(ws)
        if info is None:
            return False
        running = _is_server(info.pid)
        if running:
            _terminate(info.pid)
        _remove_record(ws)
        return running


def ensure_server(ws: Workspace) -> tuple[str, str]:
    """(base_url, model name) of the workspace's running server, started on demand."""
    info = status(ws)
    if info is None or not info.ready:
        info = serve(ws, wait=True)
    return info.base_url, info.model
