"""Queue throughput: the full lifecycle (publish -> claim -> ack) of small durable messages through
letta_cli.store.queue.Queue, against

  * the physical limit: one atomic durable file write (write + fsync + rename + fsync of the folder) of the
    same bytes, measured in the same run;
  * what users would pick instead: persist-queue's SQLiteAckQueue (put / get / ack, multithreading=True,
    auto_commit=True, i.e. every operation committed durably), which is thread-safe but keeps its
    unacked-item bookkeeping in one process, so it is not a multi-process queue.

The three are measured interleaved, in rounds, so drift of a noisy machine hits them alike. The lifecycle
is run the way the scheduler runs it: producers publish one message at a time (Queue.publish, each returning
once durable), the scheduler scans new/, claims each message (rename to cur/ + fsync of cur/, then parse)
and acks it (unlink).

Also measured, for information (not part of the ratios): batch publishing with Queue.publish_many in
chunks of 100 on a 16-thread pool, as client.publish does for a fan-out (temp files fsynced concurrently,
one fsync of new/ per batch); the system calls each queue makes per message, counted with `strace -c -f`
when strace is installed (fsyncs, and the file creations/renames/unlinks that make a file-per-message
queue's fsyncs journal commits); and multi-process safety: several producer processes publish at once,
and every message must be claimed exactly once.

    .venv/bin/python bench/queue_throughput.py [--n 5000] [--rounds 5] [--producers 4] [--no-strace]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, cleanup, header, measure_raw_writes, median, ms, ratio, scratch, us

from letta_cli.core.models import Message
from letta_cli.store.queue import Queue


def sample_message(i: int) -> Message:
    return Message(recipient=f"worker-{i % 10}", body=f"task {i}: summarise the findings so far", sender="user")


def lifecycle(root: Path, n: int) -> tuple[float, float, float]:
    """Seconds spent publishing n messages, claiming them, and acking them."""
    queue = Queue(root).setup()
    messages = [sample_message(i) for i in range(n)]
    t0 = time.perf_counter()
    for m in messages:
        queue.publish(m)
    t1 = time.perf_counter()
    entries, strays = queue.scan()
    assert len(entries) == n and not strays, (len(entries), strays)
    claimed = []
    for entry in entries:
        c = queue.claim(entry)
        assert c is not None
        claimed.append(c)
    t2 = time.perf_counter()
    for c in claimed:
        queue.ack(c)
    t3 = time.perf_counter()
    assert queue.depths() == {"new": 0, "cur": 0, "dead": 0, "corrupt": 0}
    return t1 - t0, t2 - t1, t3 - t2


def lifecycle_without_fsync(root: Path, n: int) -> float:
    """The same lifecycle with os.fsync made a no-op: NOT durable, a diagnostic that splits the time spent in
    fsync from everything else (file creation, links, renames, unlinks, JSON)."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        return sum(lifecycle(root, n))
    finally:
        os.fsync = real


def batch_publish(root: Path, n: int, batch: int = 100) -> float:
    """Seconds to publish n messages with Queue.publish_many, `batch` at a time, on a 16-thread pool."""
    queue = Queue(root).setup()
    messages = [sample_message(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=16) as io:
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            queue.publish_many(messages[start : start + batch], io)
        elapsed = time.perf_counter() - t0
    assert queue.depths()["new"] == n
    return elapsed


SYSCALLS = "fsync,fdatasync,openat,link,rename,unlink,write,pwrite64"
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from queue_throughput import lifecycle, persist_queue
(lifecycle if sys.argv[2] == "letta" else persist_queue)(Path(sys.argv[3]), int(sys.argv[4]))
"""


def syscall_counts(work: Path, n: int = 300) -> dict[str, dict[str, tuple[float, float]]] | None:
    """Per message, {queue: {syscall: (calls, wall ms)}} for n lifecycles under `strace -c -f -w`, minus a run
    of 0 lifecycles (the interpreter's start-up and imports)."""
    strace = shutil.which("strace")
    if strace is None:
        return None

    def run(which: str, count: int) -> dict[str, tuple[int, float]] | None:
        with tempfile.NamedTemporaryFile("r", suffix=".strace") as summary:
            argv = [
                strace,
                "-f",
                "-c",
                "-w",
                "-o",
                summary.name,
                "-e",
                f"trace={SYSCALLS}",
                PY,
                "-c",
                CHILD,
                str(Path(__file__).resolve().parent),
                which,
                str(work / f"strace-{which}-{count}"),
                str(count),
            ]
            if subprocess.run(argv, capture_output=True).returncode != 0:
                return None  # e.g. ptrace not permitted here
            rows = {}
            for line in summary.read().splitlines():
                parts = line.split()
                if len(parts) >= 5 and parts[-1] in SYSCALLS.split(",") and parts[3].isdigit():
                    rows[parts[-1]] = (int(parts[3]), float(parts[1]))
            return rows

    out: dict[str, dict[str, tuple[float, float]]] = {}
    for which in ("letta", "persist-queue"):
        full, empty = run(which, n), run(which, 0)
        if full is None or empty is None:
            return None
        out[which] = {
            k: ((c - empty.get(k, (0, 0.0))[0]) / n, (t - empty.get(k, (0, 0.0))[1]) * 1000 / n)
            for k, (c, t) in full.items()
            if c - empty.get(k, (0, 0.0))[0] > 0
        }
    return out


def persist_queue(root: Path, n: int) -> float:
    import persistqueue

    q = persistqueue.SQLiteAckQueue(str(root), multithreading=True, auto_commit=True)
    items = [sample_message(i).model_dump(mode="json") for i in range(n)]
    t0 = time.perf_counter()
    for item in items:
        q.put(item)
    got = 0
    while True:
        item = q.get(block=False) if q.qsize() else None
        if item is None:
            break
        q.ack(item)
        got += 1
    elapsed = time.perf_counter() - t0
    assert got == n, (got, n)
    return elapsed


def _producer(root: str, count: int, seed: int) -> None:
    queue = Queue(Path(root))
    for i in range(count):
        queue.publish(sample_message(seed * 1_000_000 + i))


def multi_producer(root: Path, producers: int, per: int) -> tuple[float, int]:
    """Several processes publish at once; then every message is claimed exactly once."""
    Queue(root).setup()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_producer, args=(str(root), per, p)) for p in range(producers)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    elapsed = time.perf_counter() - t0
    queue = Queue(root)
    entries, _ = queue.scan()
    ids = set()
    for entry in entries:
        c = queue.claim(entry)
        assert c is not None and c.message.id not in ids
        ids.add(c.message.id)
        queue.ack(c)
    return elapsed, len(ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="messages in all (default 5000)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--producers", type=int, default=4, help="processes in the multi-process check (0: skip)")
    ap.add_argument("--no-strace", dest="strace", action="store_false", help="skip counting system calls")
    args = ap.parse_args()
    per_round = max(1, args.n // args.rounds)
    n = per_round * args.rounds

    header(f"queue lifecycle: {n:,} messages, {args.rounds} interleaved rounds")
    payload = sample_message(0).model_dump_json().encode()
    print(f"   message file: {len(payload)} bytes of JSON")
    work = scratch("queue")
    raw_t = pub_t = claim_t = ack_t = pq_t = batch_t = nosync_t = 0.0
    vs_raw, vs_pq = [], []
    try:
        for r in range(args.rounds):
            raw = measure_raw_writes(work / f"raw{r}", per_round, payload)
            p, c, a = lifecycle(work / f"q{r}", per_round)
            pq = persist_queue(work / f"pq{r}", per_round)
            batch_t += batch_publish(work / f"batch{r}", per_round)
            nosync_t += lifecycle_without_fsync(work / f"nosync{r}", per_round)
            raw_t, pub_t, claim_t, ack_t, pq_t = raw_t + raw, pub_t + p, claim_t + c, ack_t + a, pq_t + pq
            vs_raw.append((p + c + a) / raw)
            vs_pq.append(pq / (p + c + a))
            print(
                f"   round {r + 1}: raw {ms(raw / per_round)}/write, lifecycle {ms((p + c + a) / per_round)}/msg, "
                f"persist-queue {ms(pq / per_round)}/msg; lifecycle/raw {vs_raw[-1]:.2f}x, "
                f"vs persist-queue {vs_pq[-1]:.2f}x",
                flush=True,
            )
        life_t = pub_t + claim_t + ack_t
        print()
        print(f"raw durable write            {ms(raw_t / n):>10} each   {n / raw_t:8.0f} /s")
        print(f"letta_cli Queue lifecycle    {ms(life_t / n):>10} each   {n / life_t:8.0f} msg/s")
        print(f"    publish                  {ms(pub_t / n):>10}")
        print(f"    claim (scan+rename+fsync+parse) {ms(claim_t / n):>10}")
        print(f"    ack (unlink)             {us(ack_t / n):>10}")
        print(
            f"persist-queue SQLiteAckQueue {ms(pq_t / n):>10} each   {n / pq_t:8.0f} msg/s  (put+get+ack, auto_commit)"
        )
        print(
            f"lifecycle with os.fsync a no-op {ms(nosync_t / n):>8} each   (not durable: a diagnostic; so the 3 fsyncs "
            f"cost {ms((life_t - nosync_t) / n)} per message)"
        )
        print(
            f"batch publish (publish_many, 100 per batch, 16 threads) {ms(batch_t / n)} per message "
            f"({pub_t / batch_t:.1f}x faster than one at a time)"
        )

        if args.strace:
            counts = syscall_counts(work)
            if counts is None:
                print("system calls: strace not available (or not permitted); skipped")
            else:
                print("system calls per message, whole lifecycle (strace -c -f -w: calls, wall time inside them,")
                print("inflated by strace itself; the counts are exact):")
                names = sorted(
                    {k for rows in counts.values() for k in rows}, key=lambda k: SYSCALLS.split(",").index(k)
                )
                for which, rows in counts.items():
                    cells = ", ".join(f"{k} {rows[k][0]:.2f} ({rows[k][1]:.2f} ms)" for k in names if k in rows)
                    print(f"    {which:<14} {cells}")

        if args.producers:
            per = max(1, per_round // args.producers)
            mp_t, got = multi_producer(work / "mp", args.producers, per)
            print(
                f"multi-process: {args.producers} producer processes published {got:,} messages in {mp_t:.2f} s "
                f"({got / mp_t:.0f} msg/s), each claimed exactly once"
            )
        print(
            f"per-round ratios: lifecycle/raw median {median(vs_raw):.2f}x (range {min(vs_raw):.2f}-{max(vs_raw):.2f}), "
            f"throughput vs persist-queue median {median(vs_pq):.2f}x (range {min(vs_pq):.2f}-{max(vs_pq):.2f})"
        )
        print()
        ratio("queue_lifecycle_vs_raw_write", life_t / raw_t, 2.5)
        ratio("queue_throughput_vs_persist_queue", pq_t / life_t, 1.0, at_most=False)
        return 0
    finally:
        cleanup(work)


if __name__ == "__main__":
    sys.exit(main())
