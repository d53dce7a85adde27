"""How many CPUs the other processes leave free: the local model's server evaluates on that many threads.

llama.cpp's worker threads spin while they wait for each other. On this project's 2-core box, 2 threads
evaluate a prompt 1.6-1.8x faster than 1 when nothing else runs, and 2x slower than 1 when another process
keeps a core busy (docs/benchmarks.md). So a sampler thread reads, twice a second, how much CPU the machine
spent (/proc/stat) and how much of it was the server's own (/proc/self/stat), and each batch the model
evaluates (up to 128 prompt tokens, or a token written) runs on the cores the others did not use over the last
half second. Without /proc (not Linux) the count stays at its most.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

INTERVAL = 0.5  # seconds between samples
Sample = tuple[int, int, int]  # (all CPUs' ticks, their busy ticks, this process's ticks)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system says, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_sample(proc: Path = Path("/proc")) -> Sample | None:
    """The machine's CPU ticks so far (all, busy) and this process's, or None without /proc."""
    try:
        fields = [int(x) for x in (proc / "stat").read_text().split("\n", 1)[0].split()[1:9]]
        own = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy + idle + iowait, busy, int(own[11]) + int(own[12])  # utime, stime: fields 14 and 15


def others_busy(before: Sample, after: Sample, cpus: int) -> float:
    """How many CPUs' worth of time processes other than this one used between two samples."""
    total = after[0] - before[0]
    if total <= 0:
        return 0.0
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others / total * cpus)


def free_of(cpus: int, busy: float, most: int) -> int:
    """The threads to run: the CPUs of which others used less than half, at least 1 and at most `most`."""
    return max(1, min(most, int(cpus - busy + 0.5)))


class FreeCpus:
    """The CPUs free now (over the last interval). A daemon thread samples every `interval` seconds
    (None: the caller calls `sample()`)."""

    def __init__(
        self, cpus: int, most: int, read: Callable[[], Sample | None] = read_sample, interval: float | None = INTERVAL
    ):
        self.cpus, self.most, self._read = cpus, most, read
        self._last = read()
        self._busy = 0.0
        self._lock = threading.Lock()
        if self._last is not None and interval is not None:
            threading.Thread(target=self._run, args=(interval,), name="free-cpus", daemon=True).start()

    def sample(self) -> None:
        """Take a sample and update the count of busy CPUs from the one before."""
        now = self._read()
        if now is None or self._last is None:
            return
        with self._lock:
            self._busy = others_busy(self._last, now, self.cpus)
            self._last = now

    def count(self) -> tuple[int, float]:
        """(the CPUs free now, the CPUs' worth of time the others used over the last interval)."""
        with self._lock:
            return free_of(self.cpus, self._busy, self.most), self._busy

    def _run(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            self.sample()
