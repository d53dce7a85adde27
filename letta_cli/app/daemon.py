"""The scheduler daemon: a scheduler that outlives one command, so a later `agents send` only publishes, says so
over a unix socket and waits for the reply, instead of importing the engine and the openai SDK and serving.

- Started on demand by a waiting `agents send` / `broadcast` when no scheduler runs (app/daemon_client); one
  per workspace (it holds the scheduler lock, like any scheduler). `agents status` shows it,
  `agents stop` stops it; it exits by itself after `limits.daemon_idle_timeout` seconds without work, and when
  its code or agents.toml changes (a sender then starts a fresh one). `AGENTS_DAEMON=0` keeps senders away.
- Each turn runs with the environment (API keys, base URL...) of the caller who sent its chain, passed over the
  socket and held in memory only: never written to disk, never logged. A chain nobody announced (a message
  published while no daemon ran) uses the environment of the sender who started the daemon.
- It serves like `agents run --watch`: the queue on disk is the truth. A kill -9 loses nothing: the next sender
  starts a new daemon, which recovers the claimed messages and replays them (idempotently).

    python -m letta_cli.app.daemon WORKSPACE     (what a sender runs; not a user command)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letta_cli.app import daemon_client
from letta_cli.core.ids import now
from letta_cli.core.models import Message, TurnRecord
from letta_cli.engine.scheduler import Scheduler
from letta_cli.store import scheduler_lock
from letta_cli.store.records import TurnRecords
from letta_cli.store.workspace import Workspace

MAX_LINE = 4 * 1024 * 1024  # one request (an environment is a few KB)
MAX_CHAINS = 10_000  # announced chains remembered (the oldest are forgotten first: a few KB each)


@dataclass
class Waiter:
    pending: set[str]
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Daemon:
    def __init__(self, ws: Workspace, idle_timeout: float):
        self.ws = ws
        self.idle_timeout = idle_timeout
        self.scheduler = Scheduler(ws, mode="watch")
        self.scheduler.env_for = self.env_for
        self.scheduler.on_delivered = self.delivered
        self.records = TurnRecords(ws.turns_dir)
        self.path = daemon_client.socket_path(ws)
        self.since = now()
        self.build = fingerprint(ws)
        self.envs: dict[str, Mapping[str, str]] = {}  # chain id -> its sender's environment (memory only)
        self.waiters: dict[str, list[Waiter]] = {}  # message id -> who waits for its record
        self.connections = 0
        self.last_active = time.monotonic()
        self.retiring = False
        self._server: asyncio.AbstractServer | None = None

    # --- the scheduler's hooks ---------------------------------------------------------------------

    def env_for(self, message: Message) -> Mapping[str, str] | None:
        return self.envs.get(message.chain_id)  # None: the environment we were started with

    def delivered(self, record: TurnRecord) -> None:
        self.last_active = time.monotonic()
        for waiter in self.waiters.pop(record.message_id, ()):
            waiter.pending.discard(record.message_id)
            if not waiter.pending:
                waiter.done.set()

    # --- life --------------------------------------------------------------------------------------

    async def run(self) -> int:
        with daemon_client.address(self.path) as addr:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(addr)  # a dead daemon's socket: we hold the lock, so nobody else listens there
            old = os.umask(0o177)
            try:
                self._server = await asyncio.start_unix_server(self._serve_client, path=addr, limit=MAX_LINE)
            finally:
                os.umask(old)
            os.chmod(addr, 0o600)
        threading.Thread(target=_import_sdk, daemon=True).start()  # the first turn needs it: start now
        idle = asyncio.create_task(self._watch_idle())
        try:
            return await self.scheduler.serve()
        finally:
            idle.cancel()
            self._close_server()

    def retire(self) -> None:
        """Stop taking requests (the socket goes first, so a sender starts a fresh daemon), then stop."""
        self.retiring = True
        self._close_server()
        self.scheduler.stop()

    def _close_server(self) -> None:
        if self._server is None:
            return
        with daemon_client.address(self.path) as addr, contextlib.suppress(FileNotFoundError):
            os.unlink(addr)
        self._server.close()
        self._server = None

    async def _watch_idle(self) -> None:
        tick = min(1.0, max(self.idle_timeout / 4, 0.05))
        while True:
            await asyncio.sleep(tick)
            if self.connections or self.scheduler.busy or self.scheduler.pending:
                self.last_active = time.monotonic()
            elif time.monotonic() - self.last_active >= self.idle_timeout:
                self.retire()
                return

    def stale(self) -> bool:
        """Has our code or agents.toml changed since we started? Then a fresh daemon must serve."""
        if fingerprint(self.ws) != self.build:
            self.retire()
        return self.retiring

    # --- one connection ----------------------------------------------------------------------------

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.last_active = time.monotonic()
        try:
            if not _same_user(writer):
                return
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                except ValueError:
                    return
                if not isinstance(request, dict):
                    return
                answer = await self._answer(request, reader)
                if answer is None:  # the sender went away while it waited
                    return
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
                if request.get("op") == "stop":
                    self.retire()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the sender went away (it will ask again if it still cares)
        finally:
            self.connections -= 1
            self.last_active = time.monotonic()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _answer(self, request: dict[str, Any], reader: asyncio.StreamReader) -> dict[str, Any] | None:
        op = request.get("op")
        if op == "status":
            return self.describe()
        if op == "stop":
            return {"ok": True}
        if op not in ("expect", "wait"):
            return {"error": f"unknown op {op!r}"}
        if self.stale():
            return {"stale": True}
        self._remember(request.get("chains"), request.get("env"))
        if op == "expect":
            return {"ok": True}
        ids = [i for i in request.get("ids") or () if isinstance(i, str)]
        waiter = Waiter({i for i in ids if not self.records.exists(i)})
        for i in waiter.pending:
            self.waiters.setdefault(i, []).append(waiter)
        self.scheduler.wake()  # they were just published
        gone = asyncio.ensure_future(reader.read(1))  # a sender that goes away (Ctrl-C) stops waiting
        done = asyncio.ensure_future(waiter.done.wait())
        try:
            if waiter.pending:
                await asyncio.wait({gone, done}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done.is_set():
                    return None
        finally:
            gone.cancel()
            done.cancel()
            for i in waiter.pending:
                with contextlib.suppress(KeyError, ValueError):
                    self.waiters[i].remove(waiter)
        return {"done": True}

    def _remember(self, chains: object, env: object) -> None:
        if not isinstance(chains, list) or not isinstance(env, dict):
            return
        clean = {str(k): str(v) for k, v in env.items()}
        for chain in chains:
            if isinstance(chain, str):
                self.envs.pop(chain, None)
                self.envs[chain] = clean
        while len(self.envs) > MAX_CHAINS:
            self.envs.pop(next(iter(self.envs)))

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "since": self.since.isoformat(),
            "idle_timeout": self.idle_timeout,
            "socket": str(self.path),
            "connections": self.connections - 1,  # not counting the one asking
            "running_turns": len(self.scheduler.busy),
            "handled": self.scheduler.handled,
        }


def _same_user(writer: asyncio.StreamWriter) -> bool:
    """Only our own user may talk to us (the socket is 0600 in a 0700 folder already)."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def fingerprint(ws: Workspace) -> tuple[Any, ...]:
    """What a daemon's behaviour depends on beyond the agent files (which it re-reads): agents.toml and the
    code of letta_cli itself (an upgrade, or a developer's edit, must not keep an old daemon serving)."""
    parts: list[tuple[Any, ...]] = []
    with contextlib.suppress(OSError):
        st = ws.config_path.stat()
        parts.append((st.st_mtime_ns, st.st_size))
    package = Path(__file__).resolve().parent.parent
    for folder, _dirs, files in os.walk(package):
        for name in files:
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(folder, name))
                    parts.append((name, st.st_mtime_ns, st.st_size))
    return tuple(parts)


def _import_sdk() -> None:
    with contextlib.suppress(ImportError):
        import openai  # noqa: F401


def serve(ws: Workspace) -> int:
    """Hold the scheduler lock and serve until idle; 0 at once if another scheduler runs."""
    idle_timeout = ws.config.limits.daemon_idle_timeout
    with scheduler_lock.hold(ws) as got:
        if not got:
            return 0
        return asyncio.run(Daemon(ws, idle_timeout).run())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m letta_cli.app.daemon WORKSPACE\n")
        return 2
    ws = Workspace(Path(args[0]).resolve())
    try:
        serve(ws)
    except Exception:
        return 1  # the senders serve in-process when no daemon answers; the trace has what the turns did
    return 0


if __name__ == "__main__":
    sys.exit(main())
