"""The fixes proposed in docs/benchmarks.md, measured: each as a monkeypatched variant of letta_cli, run in
the same process and interleaved with the real code, so before and after see the same machine.

This script is evidence for the proposals, not a benchmark of the shipped code (run_all.sh measures that).
Nothing here changes a file; the patches live only in this process (and its children).

  1. queue   - Queue.claim without the fsync of cur/ (the rename alone survives a process crash, which is
               what the attempt count is for; recover() moves cur/ back to new/ on start anyway)
  2. turns   - the same, seen in the per-turn cost; and the history reads of every turn: has_turn
               (JSON-parses the last 256 KB of the history to look for one id) searching the id's bytes
               first, and window validating entries newest-first until its budget is full
  3. fan-out - publish a batch with the file fsyncs done concurrently (the journal commits them together)
               and one fsync of new/; the scheduler's per-turn disk work (commit, history, ack) on an I/O
               thread pool instead of the event loop; a broadcast tool call publishes its batch at once
  4. scale   - a persistent index of parsed agent files (.agents/cache/agents.json, keyed by inode, size,
               mtime and ctime), so a fresh process parses only changed files and validates only matches;
               and the cyclic GC off while loading (and frozen before exit: its final pass over 10,000
               parsed agents costs about half a second)
  5. start-up - what `agents list` costs when the CLI imports only what the command needs and prints a
               plain table to a pipe (emulated by a minimal script doing the same work)

    .venv/bin/python bench/proposed_fixes.py [--only queue,turns,fanout,scale,startup]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PY, REPO, cleanup, clean_env, header, make_workspace, measure_raw_writes, median, ms, read_trace, scratch,
    start_fakellm,
)

from letta_cli import client, history  # noqa: E402
from letta_cli.errors import StorageError  # noqa: E402
from letta_cli.fsio import fsync_dir, storage_errors, write_tmp  # noqa: E402
from letta_cli.queue import Claimed, Entry, Queue  # noqa: E402
from letta_cli.scheduler import Scheduler  # noqa: E402
from letta_cli.workspace import Workspace  # noqa: E402

IO = ThreadPoolExecutor(32, thread_name_prefix="bench-io")


@contextlib.contextmanager
def patched(*triples):
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in triples]
    for obj, name, value in triples:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


# --------------------------------------------------------------------------------------------- the fixes

from letta_cli.models import Message  # noqa: E402
from pydantic import ValidationError  # noqa: E402


def claim_without_fsync(self: Queue, entry: Entry) -> Claimed | None:
    """Queue.claim minus fsync_dir(cur/)."""
    attempts = entry.attempts + 1
    dst = self.dirs["cur"] / f"{entry.id}.a{attempts}.json"
    with storage_errors("the queue"):
        os.rename(self.dirs["new"] / entry.name, dst)
    try:
        message = Message.model_validate_json(dst.read_bytes())
    except (ValidationError, ValueError, UnicodeDecodeError) as exc:
        self.quarantine(dst, f"unreadable message file: {str(exc).splitlines()[0]}")
        return None
    if message.id != entry.id:
        self.quarantine(dst, f"file name says {entry.id} but the message id is {message.id}")
        return None
    return Claimed(message, attempts, dst)


def publish_many(queue: Queue, messages: list[Message]) -> None:
    """Publish a batch: every file written and fsynced concurrently, linked, then ONE fsync of new/."""
    queue.setup()

    def stage(m: Message) -> tuple[Message, Path]:
        return m, write_tmp(queue.dirs["tmp"], m.model_dump_json().encode(), prefix=f"{m.id}.")

    with storage_errors("the queue"):
        for m, tmp in list(IO.map(stage, messages)):
            try:
                os.link(tmp, queue.dirs["new"] / f"{m.id}.json")
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        fsync_dir(queue.dirs["new"])


REAL_CLIENT_PUBLISH = client.publish


def client_publish_batched(ws, recipients, body, **kw):
    """client.publish with its per-message Queue.publish calls gathered into one publish_many."""
    staged: list[tuple[Queue, Message]] = []

    def stage(self: Queue, message: Message) -> Path:
        staged.append((self, message))
        return self.dirs["new"] / f"{message.id}.json"

    with patched((Queue, "publish", stage)):
        messages = REAL_CLIENT_PUBLISH(ws, recipients, body, **kw)
    if staged:
        publish_many(staged[0][0], [m for _, m in staged])
    return messages


def _apply_on_disk(self: Scheduler, record, claimed: Claimed) -> None:
    """Scheduler._apply's disk work (history, outbox, trace, ack), for an I/O thread."""
    msg = claimed.message
    if record.status == "ok" and record.history:
        path = self.ws.history_file(record.agent)
        if not history.has_turn(path, record.message_id):
            history.append_turn(path, record.history)
    for out in record.outbox:
        if not (self.records.exists(out.id) or self.queue.known(out.id)):
            self.queue.publish(out)
            self.trace.published(out)
    self.trace.emit(
        "turn_end", message_id=msg.id, chain_id=msg.chain_id, agent=record.agent, status=record.status,
        reply=record.reply, error=record.error, prompt_tokens=record.usage.prompt_tokens,
        completion_tokens=record.usage.completion_tokens, model_calls=record.usage.model_calls,
        duration_ms=round((record.ended_at - record.started_at).total_seconds() * 1000), attempts=record.attempts,
    )
    if record.status == "dead":
        self.queue.dead_letter(claimed, record.error or "failed")
    else:
        self.queue.ack(claimed)


async def handle_offloaded(self: Scheduler, claimed: Claimed) -> None:
    """Scheduler._handle with the commit and the disk part of _apply run on an I/O thread pool."""
    msg = claimed.message
    loop = asyncio.get_running_loop()
    committed = False
    try:
        record = self.records.get(msg.id)
        if record is None:
            record = await self._run(claimed)
            if record is None:
                return
            await loop.run_in_executor(IO, self.records.commit, record)
        committed = True
        await loop.run_in_executor(IO, _apply_on_disk, self, record, claimed)
        self.handled += 1
        future = self.futures.pop(msg.id, None)
        if future is not None and not future.done():
            future.set_result(record)
    except asyncio.CancelledError:
        if not committed and claimed.path.exists():
            with contextlib.suppress(OSError):
                self.queue.release(claimed)
        raise
    except (StorageError, OSError) as exc:
        self.fatal = exc if isinstance(exc, StorageError) else StorageError(f"storage failure: {exc}")
        self.stop()
    finally:
        self.claimed.pop(msg.id, None)
        if self.busy.get(msg.recipient) is asyncio.current_task():
            del self.busy[msg.recipient]
        self._peek_cache.pop(msg.id, None)
        if self._wake is not None:
            self._wake.set()


REAL_GATHER = Scheduler.gather


async def gather_batched(self: Scheduler, ctx, messages: list[Message], limit: int):
    """Scheduler.gather that first publishes the whole batch in one publish_many, off the event loop."""
    fresh = [m for m in messages if not (self.records.exists(m.id) or self.queue.known(m.id))]
    if fresh:
        await asyncio.get_running_loop().run_in_executor(None, publish_many, self.queue, fresh)
        for m in fresh:
            self.trace.published(m)
        if self._wake is not None:
            self._wake.set()
    return await REAL_GATHER(self, ctx, messages, limit)


FANOUT_FIXES = (
    (client, "publish", client_publish_batched),
    (Queue, "claim", claim_without_fsync),
    (Scheduler, "_handle", handle_offloaded),
    (Scheduler, "gather", gather_batched),
)


# ------------------------------------------------------------------------------------------ 1. the queue


def section_queue(rounds: int = 3, per: int = 500) -> None:
    from queue_throughput import lifecycle, persist_queue, sample_message

    header(f"fix 1: Queue.claim without fsync of cur/ ({rounds} rounds of {per} messages)")
    payload = sample_message(0).model_dump_json().encode()
    work = scratch("fix-queue")
    t = {"raw": 0.0, "real": 0.0, "fixed": 0.0, "pq": 0.0}
    try:
        for r in range(rounds):
            t["raw"] += measure_raw_writes(work / f"raw{r}", per, payload)
            t["real"] += sum(lifecycle(work / f"real{r}", per))
            with patched((Queue, "claim", claim_without_fsync)):
                t["fixed"] += sum(lifecycle(work / f"fixed{r}", per))
            t["pq"] += persist_queue(work / f"pq{r}", per)
        n = rounds * per
        print(f"   raw durable write {ms(t['raw'] / n)}; lifecycle real {ms(t['real'] / n)}, "
              f"fixed {ms(t['fixed'] / n)}; persist-queue {ms(t['pq'] / n)}")
        print(f"   lifecycle/raw: real {t['real'] / t['raw']:.2f}x -> fixed {t['fixed'] / t['raw']:.2f}x; "
              f"throughput vs persist-queue: real {t['pq'] / t['real']:.2f}x -> fixed {t['pq'] / t['fixed']:.2f}x")
    finally:
        cleanup(work)


# ------------------------------------------------------------------------------------------ 2. the turns


def has_turn_by_search(path: Path, turn_id: str) -> bool:
    """history.has_turn that looks for the id's bytes and parses only the lines holding it."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return False
    with open(path, "rb") as fh:
        fh.seek(max(0, size - history.TAIL_CHUNK))
        data = fh.read()
    needle = turn_id.encode()
    if needle not in data:
        return False
    for raw in data.split(b"\n"):
        if needle in raw:
            with contextlib.suppress(ValueError):
                if json.loads(raw).get("turn_id") == turn_id:
                    return True
    return False


def window_from_the_end(path: Path, max_entries: int, max_chars: int):
    """history.window that validates entries newest first and stops once the budget is full."""
    from letta_cli.models import HistoryEntry

    if max_entries == 0 or max_chars == 0:
        return []
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return []
    start = max(0, size - max(max_chars * 2, 64 * 1024))
    with open(path, "rb") as fh:
        fh.seek(start)
        lines = fh.read().split(b"\n")
    if start > 0:
        lines = lines[1:]
    picked, used = [], 0
    for raw in reversed(lines):
        if not raw.strip():
            continue
        try:
            entry = HistoryEntry.model_validate_json(raw)
        except (ValidationError, ValueError):
            continue
        size = len(entry.content or "") + len(json.dumps(entry.tool_calls) if entry.tool_calls else "")
        if len(picked) >= max_entries or used + size > max_chars:
            break
        picked.append(entry)
        used += size
    picked.reverse()
    while picked and picked[0].seq != 0:
        picked.pop(0)
    return picked


HISTORY_FIXES = ((history, "has_turn", has_turn_by_search), (history, "window", window_from_the_end))


def section_turns(rounds: int = 2, per: int = 60, prior: int = 1000) -> None:
    from turn_overhead import prefill_history

    header(f"fix 2: per-turn cost, {per} sequential turns x {rounds} rounds per variant, {prior} turns of history")
    import openai  # noqa: F401

    llm = start_fakellm()
    work = scratch("fix-turns")
    try:
        root = make_workspace(work / "ws", {"solo": ["b"]}, base_url=llm.url, blocks={"persona": "", "human": ""})
        ws = Workspace(root)
        prefill_history(ws, "solo", prior)
        path = ws.history_file("solo")
        assert [e.model_dump() for e in window_from_the_end(path, 40, 24_000)] == \
            [e.model_dump() for e in history.window(path, 40, 24_000)], "window_from_the_end differs"
        variants = {
            "real": (),
            "claim without fsync": ((Queue, "claim", claim_without_fsync),),
            "+ history fixes": ((Queue, "claim", claim_without_fsync), *HISTORY_FIXES),
        }
        own: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(rounds):
            for name, fixes in variants.items():
                raw = measure_raw_writes(work / f"raw{r}{len(own[name])}{name[:4]}", per, b"x" * 730) / per
                ids = {client.publish(ws, ["solo"], f"q{r}.{i}")[0].id for i in range(per)}
                with patched(*fixes):
                    t0 = time.perf_counter()
                    client.run_scheduler(ws, "drain")
                    wall = time.perf_counter() - t0
                model = sum(e["duration_ms"] for e in read_trace(root)
                            if e["event"] == "model_call" and e["message_id"] in ids) / 1000
                own[name].append(((wall - model) / per, raw))
        for name, values in own.items():
            cost = median([v[0] for v in values])
            in_raw = median([v[0] / v[1] for v in values])
            print(f"   {name:<22} own cost {ms(cost)}/turn = {in_raw:.2f} raw durable writes")
    finally:
        llm.stop()
        cleanup(work)


# ---------------------------------------------------------------------------------------- 3. the fan-out


def section_fanout(sizes=(100,), reps: int = 2, big: int = 500) -> None:
    from broadcast import sdk_baseline, shell_path, start_server, tool_path, workspace_for

    header("fix 3: broadcast with batched publish + disk work off the event loop (200 ms model)")
    import openai  # noqa: F401

    server, url = start_server(0.2)
    work = scratch("fix-fanout")
    try:
        def run(n: int, variant: str, k: int) -> tuple[float, float, float]:
            ws = workspace_for(work / f"{variant}{n}-{k}", n, url)
            with patched(*(FANOUT_FIXES if variant == "fixed" else ())):
                shell, publish = shell_path(ws, [f"w{i:04d}" for i in range(n)])
                tool, _, _ = tool_path(ws, n)
            return shell, publish, tool

        for n in sizes:
            res = {"real": [], "fixed": []}
            sdk = []
            for k in range(reps):
                sdk.append(sdk_baseline(url, n, 64))
                for variant in ("real", "fixed"):
                    res[variant].append(run(n, variant, k))
            print(f"   {n} agents, bare SDK baseline {median(sdk):.2f} s")
            for variant, rows in res.items():
                print(f"   {n} agents, {variant:<5}: shell {median([r[0] for r in rows]):.2f} s "
                      f"(publish {median([r[1] for r in rows]):.2f} s), tool {median([r[2] for r in rows]):.2f} s")
        if big:
            sdk = sdk_baseline(url, big, 64)
            shell, publish, tool = run(big, "fixed", 0)
            print(f"   {big} agents, fixed: shell {shell:.2f} s (publish {publish:.2f} s), tool {tool:.2f} s; "
                  f"bare SDK baseline {sdk:.2f} s")
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        cleanup(work)


# ------------------------------------------------------------------------------------------- 4. scale

INDEXED_MATCH = r"""
import json, os, sys, time
from pathlib import Path
t0 = time.perf_counter()
from letta_cli.agents import AgentStore, parse_agent_file
from letta_cli.errors import InvalidFile
from letta_cli.models import AgentDef
from letta_cli.workspace import Workspace

def matching_indexed(store, tags):
    index_path = store.ws.state_dir / "cache" / "agents.json"
    try:
        index = json.loads(index_path.read_bytes())
    except (OSError, ValueError):
        index = {}
    agents, errors, changed, seen = [], [], False, set()
    folder = str(store.ws.agents_dir)
    want = set(tags)
    for name in store.names():
        seen.add(name)
        path = os.path.join(folder, name + ".toml")
        try:
            st = os.stat(path)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror}")
            continue
        key = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        hit = index.get(name)
        if hit is not None and hit[0] == key:
            data = hit[1]
        else:
            try:
                data = parse_agent_file(Path(path)).model_dump(mode="json")
            except InvalidFile as exc:
                errors.append(str(exc))
                continue
            index[name] = [key, data]
            changed = True
        if want <= set(data["tags"]) and want:
            agents.append(AgentDef.model_validate(data))
    for name in set(index) - seen:
        del index[name]
        changed = True
    if changed:  # a cache: atomic rename, no fsync (a lost or torn index is simply rebuilt)
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f".agents.json.{os.getpid()}")
        tmp.write_text(json.dumps(index, separators=(",", ":")))
        os.replace(tmp, index_path)
    return agents, errors

import gc
if sys.argv[2] == "nogc":
    gc.disable()
t1 = time.perf_counter()
store = AgentStore(Workspace.find(sys.argv[1]))
agents, errors = matching_indexed(store, ["x"])
t2 = time.perf_counter()
assert not errors
print(json.dumps({"import": t1 - t0, "match": t2 - t1, "matched": len(agents)}))
if sys.argv[2] == "nogc":
    gc.freeze()  # nothing left for the collector to walk at exit
"""

REAL_MATCH = r"""
import json, sys, time
t0 = time.perf_counter()
from letta_cli.agents import AgentStore
from letta_cli.workspace import Workspace
import gc
if sys.argv[2] == "nogc":
    gc.disable()
t1 = time.perf_counter()
r = AgentStore(Workspace.find(sys.argv[1])).matching(["x"])
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "match": t2 - t1, "matched": len(r.agents)}))
if sys.argv[2] == "nogc":
    gc.freeze()  # nothing left for the collector to walk at exit
"""


def section_scale(n: int = 10_000, reps: int = 3) -> None:
    from scale import make_big_workspace, run_measured

    header(f"fix 4: agent files at scale ({n:,} agents, one in ten tagged x; {reps} runs, medians)")
    work = scratch("fix-scale")
    try:
        root = work / "ws"
        make_big_workspace(root, n)
        env = {**clean_env(), "PYTHONPATH": str(REPO)}
        variants = [  # (label, script, gc flag, keep the index from the previous variant)
            ("real", REAL_MATCH, "gc", False),
            ("real, GC off + frozen at exit", REAL_MATCH, "nogc", False),
            ("index, first run (builds it)", INDEXED_MATCH, "gc", False),
            ("index present", INDEXED_MATCH, "gc", True),
            ("index present, GC off", INDEXED_MATCH, "nogc", True),
        ]
        rows: dict[str, list[tuple[float, float, float]]] = {v[0]: [] for v in variants}
        index = root / ".agents" / "cache" / "agents.json"
        for _ in range(reps):
            for label, script, flag, keep in variants:
                if not keep:
                    index.unlink(missing_ok=True)
                wall, cpu, rss, out = run_measured([PY, "-c", script, str(root), flag], env)
                rows[label].append((json.loads(out)["match"], wall, rss))
        for label, values in rows.items():
            print(f"   {label:<32} matching {median([v[0] for v in values]) * 1000:6.0f} ms, whole process "
                  f"{median([v[1] for v in values]) * 1000:6.0f} ms, peak RSS {max(v[2] for v in values):.0f} MB")
    finally:
        cleanup(work)


# ------------------------------------------------------------------------------------------ 5. start-up

LEAN_LIST = r"""
import sys
import typer
from letta_cli.agents import AgentStore
from letta_cli.workspace import Workspace

app = typer.Typer()

@app.command()
def list_(workspace: str = typer.Option(None, "-w"), tag: list[str] = typer.Option(None, "--tag")) -> None:
    store = AgentStore(Workspace.find(workspace))
    report = store.matching(tag) if tag else store.load_all()
    rows = [("name", "model", "tags", "description")]
    rows += [(a.name, a.model or "(default)", ",".join(a.tags), a.description) for a in report.agents]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        sys.stdout.write(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")

app()
"""


def section_startup(reps: int = 20) -> None:
    from startup import MINIMAL_TYPER, agents_argv, run_once

    header(f"fix 5: start-up with lazy imports and a plain table on pipes (emulated; {reps} runs, medians)")
    work = scratch("fix-startup")
    try:
        root = make_workspace(work / "ws", {f"agent-{i:03d}": ["team"] for i in range(100)})
        (work / "typer_app.py").write_text(MINIMAL_TYPER)
        (work / "lean_list.py").write_text(LEAN_LIST)
        env = {**clean_env(), "PYTHONPATH": str(REPO)}
        cmds = {
            "minimal Typer app": [PY, str(work / "typer_app.py")],
            "agents list (real)": [*agents_argv(), "-w", str(root), "list"],
            "lean list (emulated fix)": [PY, str(work / "lean_list.py"), "-w", str(root)],
        }
        for argv in cmds.values():
            run_once(argv, env)
        res = {k: [] for k in cmds}
        for _ in range(reps):
            for k, argv in cmds.items():
                res[k].append(run_once(argv, env)[:2])
        base_wall = median([r[0] for r in res["minimal Typer app"]])
        base_cpu = median([r[1] for r in res["minimal Typer app"]])
        for k, rows in res.items():
            wall, cpu = median([r[0] for r in rows]), median([r[1] for r in rows])
            print(f"   {k:<26} wall {wall * 1000:6.0f} ms ({wall / base_wall:.2f}x)   CPU {cpu * 1000:6.0f} ms "
                  f"({cpu / base_cpu:.2f}x)")
    finally:
        cleanup(work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="queue,turns,fanout,scale,startup")
    args = ap.parse_args()
    sections = {"queue": section_queue, "turns": section_turns, "fanout": section_fanout,
                "scale": section_scale, "startup": section_startup}
    for name in args.only.split(","):
        sections[name]()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
