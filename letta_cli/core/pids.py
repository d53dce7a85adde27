"""Whether a process id still runs: the one liveness test behind stale temp files, staged imports, the model
server and the scheduler daemon."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while `pid` exists, ours or someone else's (a process we may not signal is still alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
