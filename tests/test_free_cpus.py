"""The local model's threads: how many CPUs the other processes leave free (model/free_cpus.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from letta_cli.model import free_cpus


def fake_proc(tmp_path: Path, cpu: str, own: str) -> Path:
    (tmp_path / "self").mkdir(exist_ok=True)
    (tmp_path / "stat").write_text(f"cpu  {cpu}\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n")
    (tmp_path / "self" / "stat").write_text(own)
    return tmp_path


def test_a_sample_reads_the_machines_ticks_and_our_own(tmp_path):
    # user nice system idle iowait irq softirq steal guest guest_nice
    own = "42 (odd ) name) S 1 42 42 0 -1 4194304 10 0 0 0 30 12 0 0 20 0 3 0 100 1000 100"
    proc = fake_proc(tmp_path, "100 5 50 800 20 3 2 10 0 0", own)
    assert free_cpus.read_sample(proc) == (990, 170, 42)  # all, busy (no idle, no iowait), utime + stime


def test_a_sample_without_proc_is_none(tmp_path):
    assert free_cpus.read_sample(tmp_path) is None
    assert free_cpus.read_sample(fake_proc(tmp_path, "garbage", "1 (x) S")) is None


def test_our_own_time_is_not_counted_as_the_others():
    # 2 CPUs for 100 ticks each: 200 ticks, of which 150 busy, 100 of them ours
    assert free_cpus.others_busy((0, 0, 0), (200, 150, 100), cpus=2) == pytest.approx(0.5)
    assert free_cpus.others_busy((0, 0, 0), (200, 150, 150), cpus=2) == 0.0
    assert free_cpus.others_busy((5, 5, 5), (5, 5, 5), cpus=2) == 0.0  # no time passed


@pytest.mark.parametrize(
    ("cpus", "busy", "most", "threads"),
    [(2, 0.0, 4, 2), (2, 0.4, 4, 2), (2, 0.6, 4, 1), (2, 1.9, 4, 1), (2, 5.0, 4, 1), (8, 1.0, 4, 4), (8, 6.2, 4, 2)],
)
def test_the_threads_are_the_cpus_others_leave_free(cpus, busy, most, threads):
    assert free_cpus.free_of(cpus, busy, most) == threads


def test_the_count_follows_the_samples():
    samples = iter([(0, 0, 0), (200, 20, 10), (400, 200, 20), (600, 210, 200)])
    free = free_cpus.FreeCpus(2, 2, read=lambda: next(samples), interval=None)
    assert free.count() == (2, 0.0)  # before any interval: all of them
    free.sample()
    assert free.count() == (2, pytest.approx(0.1))  # others used 0.1 CPU
    free.sample()
    assert free.count() == (1, pytest.approx(1.7))
    free.sample()
    assert free.count() == (2, 0.0)  # the busy ticks were our own


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc")
def test_a_spinning_process_is_among_the_others_and_our_own_time_is_apart():
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"])
    try:
        before, hog_before = free_cpus.read_sample(), cpu_ticks(hog.pid)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # we spin too, on the CPU the hog leaves
            pass
        after, hog_after = free_cpus.read_sample(), cpu_ticks(hog.pid)
    finally:
        hog.kill()
        hog.wait()
    assert before is not None and after is not None
    ours = after[2] - before[2]
    others = (after[1] - before[1]) - ours
    assert ours >= 10  # we did spin (0.1 CPU-seconds at least)
    assert others >= hog_after - hog_before - 2  # the hog's ticks are among the others' (2: ticks' rounding)
    busy = free_cpus.others_busy(before, after, cpus=2)
    assert busy == pytest.approx(others / (after[0] - before[0]) * 2)


class StubModel:
    """Stands in for llama_cpp.Llama: records what each `eval` call gets."""

    n_batch = 2

    def __init__(self):
        self.calls: list[list[int]] = []

    def eval(self, tokens):
        self.calls.append(list(tokens))


def test_each_batch_the_model_evaluates_runs_on_the_cpus_free_then(capfd):
    from letta_cli.model.llama_server import _Threads

    # the others' busy CPUs, one interval after another: 0.1, 1.7, then idle again
    samples = iter([(0, 0, 0), (200, 20, 10), (400, 200, 20), (600, 210, 200)])
    free = free_cpus.FreeCpus(2, 2, read=lambda: next(samples), interval=None)
    set_to: list[tuple[list[int], int]] = []
    model = StubModel()
    threads = _Threads(free, lambda llama, n: set_to.append((list(llama.calls), n)))
    threads.attach(model)
    threads.attach(model)  # once only

    free.sample()
    model.eval([1, 2, 3])  # a prompt of two batches
    free.sample()
    model.eval([4])  # a token written, while another process took a CPU
    model.eval([5])
    free.sample()
    model.eval([6])

    assert model.calls == [[1, 2], [3], [4], [5], [6]]
    assert set_to == [([], 2), ([[1, 2], [3]], 1), ([[1, 2], [3], [4], [5]], 2)]  # set before the batch, on change
    log = capfd.readouterr().err.splitlines()
    assert log == [
        "letta-cli: 2 thread(s) from now on; other processes used 0.1 CPUs",
        "letta-cli: 1 thread(s) from now on; other processes used 1.7 CPUs",
        "letta-cli: 2 thread(s) from now on; other processes used 0.0 CPUs",
    ]
