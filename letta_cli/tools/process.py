"""Running one command for a tool call, without blocking the event loop: an asyncio subprocess in its own
process group (a new session), in the workspace, with a scrubbed environment, the arguments as JSON on stdin.

The whole group is killed (SIGKILL) when the command times out, when the awaiting turn is cancelled (the
scheduler stopping), and also once the command has exited: no process a tool started outlives its call, and
nothing left holding the pipes can keep the call waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# What every command sees of the environment: enough to find programs and speak the user's language.
# Everything else (model keys above all) is passed only when the tool lists it by name.
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
STDERR_BYTES = 4096  # of stderr, kept for the error text
STDOUT_BYTES = 1 << 20  # of stdout, kept to count what is cut in characters (beyond: counted in bytes)
REAP_SECONDS = 5.0  # how long a killed group's leader gets to be reaped


@dataclass
class Outcome:
    exit_code: int | None  # None: killed on timeout
    stdout: str  # the first `limit` characters, then how much was cut
    stderr: str
    duration: float  # seconds
    timed_out: bool = False


def scrubbed_env(
    passed: list[str], extra: Mapping[str, str], source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: BASE_ENV, the variables the tool lists, and `extra` (ours, e.g. AGENTS_AGENT)."""
    env = os.environ if source is None else source
    out = {k: env[k] for k in (*BASE_ENV, *passed) if k in env}
    out.update(extra)
    return out


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def cut(data: bytes, total: int, limit: int) -> str:
    """Decoded output in at most `limit` characters: if it is longer, its beginning and a note of how much
    was cut (in characters, or in bytes if some was never read into memory), the note counted in the limit."""
    text = data.decode("utf-8", errors="replace")
    if len(text) <= limit and total == len(data):
        return text
    keep = limit
    for _ in range(3):  # the note's length depends on how much it says was cut
        note = (
            f"... [{len(text) - keep} more chars cut]" if total == len(data) else f"... [cut: {total:,} bytes in all]"
        )
        keep = max(0, limit - len(note))
    return text[:keep] + note


async def _collect(stream: asyncio.StreamReader | None, cap: int) -> tuple[bytes, int]:
    """Read a pipe to its end, keeping the first `cap` bytes (the rest is counted and dropped, so a chatty
    command cannot fill memory, nor block on a full pipe)."""
    if stream is None:
        return b"", 0
    kept = bytearray()
    total = 0
    while chunk := await stream.read(65536):
        total += len(chunk)
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept), total


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes) -> None:
    if stdin is None:
        return
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # a command that does not read its arguments is fine
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


async def run_command(
    argv: list[str], stdin: bytes, *, cwd: Path, env: dict[str, str], timeout: float, limit: int
) -> Outcome:
    """Run argv to its end (or its timeout). OSError if it cannot be started at all."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,  # its own process group: killed as one
    )
    out = asyncio.ensure_future(_collect(proc.stdout, max(limit * 4 + 4, STDOUT_BYTES)))
    err = asyncio.ensure_future(_collect(proc.stderr, STDERR_BYTES))
    timed_out = False
    try:
        try:
            async with asyncio.timeout(timeout):
                await _feed(proc.stdin, stdin)
                await proc.wait()
                kill_group(proc.pid)  # what it left behind must not hold the pipes open
                await asyncio.gather(out, err)
        except TimeoutError:
            timed_out = True
    finally:  # on timeout, on cancellation (the turn stopped), always: the whole group goes
        kill_group(proc.pid)
        if proc.returncode is None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(proc.wait()), REAP_SECONDS)
        for task in (out, err):
            if not task.done():
                task.cancel()
    duration = time.monotonic() - started
    if timed_out:
        return Outcome(None, "", "", duration, timed_out=True)
    (stdout, stdout_total), (stderr, stderr_total) = out.result(), err.result()
    return Outcome(proc.returncode, cut(stdout, stdout_total, limit), cut(stderr, stderr_total, STDERR_BYTES), duration)
