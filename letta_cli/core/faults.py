"""Test-only crash points: LETTA_CLI_CRASH_AT=name[,name...] SIGKILLs the process when it reaches one.

A name may carry a count, `after_claim@3`, to die on the third time the point is reached. Real crashes
cannot be simulated honestly by exceptions, so the process really dies.
"""

import os
import signal

_SPEC = os.environ.get("LETTA_CLI_CRASH_AT", "")
_counts: dict[str, int] = {}


def _targets() -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in _SPEC.split(","))):
        name, _, nth = item.partition("@")
        out[name] = int(nth) if nth.isdigit() else 1
    return out


_TARGETS = _targets()


def crashpoint(name: str) -> None:
    if not _TARGETS or name not in _TARGETS:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _TARGETS[name]:
        os.kill(os.getpid(), signal.SIGKILL)


# LETTA_CLI_FAIL_AT=write:ENOSPC,fsync:EIO,rename:EIO@2,link:EIO makes that file operation raise OSError, as a
# full or failing disk would; `@n` starts failing at the n-th call (a disk that goes bad mid-run). Test-only.
def _fails() -> dict[str, tuple[int, int]]:
    out = {}
    for item in filter(None, os.environ.get("LETTA_CLI_FAIL_AT", "").split(",")):
        op, _, rest = item.partition(":")
        code, _, nth = rest.partition("@")
        errno_code = -1 if code == "BUG" else getattr(__import__("errno"), code, 5)
        out[op] = (errno_code, int(nth) if nth.isdigit() else 1)
    return out


_FAILS = _fails()
_calls: dict[str, int] = {}


class InjectedBug(RuntimeError):
    """`op:BUG` raises this instead of an OSError: a bug of ours at that point (not a disk failure)."""


def failpoint(op: str) -> None:
    if op in _FAILS:
        _calls[op] = _calls.get(op, 0) + 1
        code, start = _FAILS[op]
        if _calls[op] >= start:
            if code == -1:
                raise InjectedBug(f"injected at {op}")
            raise OSError(code, f"{os.strerror(code)} (injected at {op})")
