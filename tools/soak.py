#!/usr/bin/env python3
"""Random-kill soak: producers (`agents send --no-wait`) and a scheduler (`agents run --watch`) are killed
with SIGKILL at random times, restarted, for N cycles; then a final drain, and the books are balanced.

    python tools/soak.py 300                 # 300 cycles (about 8 minutes on 2 cores)
    python tools/soak.py 15 --json           # the CI variant (tests/test_soak.py)
    python tools/soak.py 75 --storm          # a restart storm: each scheduler killed 0.2-0.9 s into serving

With --storm most kills land while the scheduler's first turns are still starting (importing the model SDK
takes most of a second on 2 cores), the rest mid-turn. max_attempts is the default (5): a restart must never
use up a message's attempts, so `dead_restarts` (dead letters saying the process died during them) must be 0.

Every message whose `agents send` exited 0 must be handled exactly once (one user entry with its text in the
receiver's history) or be in dead/ with a reason. A send that was killed may or may not have queued its
message, but it is never handled twice. Half the messages ask the agent to forward a note to another agent
(send_message_to_agent_async): each handled one must reach the other agent exactly once too.

The model is tests/fakellm.py's FakeLLM, in this process, answering after a small random delay.
Exit status 0 when lost == duplicated == 0 and every state file is intact; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakellm import FakeLLM, call, text, tool_results  # noqa: E402
from tests.harness import check_state, write_agent  # noqa: E402

AGENTS = [f"a{i}" for i in range(4)]
CONFIG = """version = 1
model = "fake-model"
[limits]
retry_backoff = 0.05
model_retries = 1
model_timeout = 5
max_attempts = {max_attempts}
"""


def model(rng: random.Random):
    def answer(body: dict):
        delay = rng.uniform(0.0, 0.03)
        if tool_results(body):
            return text("done", delay=delay)
        inbound = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        me = AGENTS.index(next(a for a in AGENTS if f'You are agent "{a}"' in body["messages"][0]["content"]))
        if inbound.startswith("fwd "):
            other = AGENTS[(me + 1) % len(AGENTS)]
            reply = call("send_message_to_agent_async", other_agent_id=other, message="relay " + inbound[4:])
            reply.delay = delay
            return reply
        return text("ok", delay=delay)

    return answer


class Soak:
    def __init__(
        self, root: Path, cycles: int, producers: int, seed: int, verbose: bool, storm: bool = False, attempts: int = 5
    ):
        self.root = root
        self.storm = storm
        self.attempts = attempts
        self.cycles = cycles
        self.producers = producers
        self.rng = random.Random(seed)
        self.verbose = verbose
        self.llm = FakeLLM()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTS_", "LETTA_CLI_"))}
        self.env.update(PYTHONPATH=str(REPO), NO_COLOR="1", OPENAI_API_KEY="sk-soak")
        self.scheduler: subprocess.Popen | None = None
        self.inflight: dict[subprocess.Popen, str] = {}
        self.sent: list[str] = []  # bodies whose send exited 0
        self.unknown: list[str] = []  # bodies whose send was killed
        self.failed: Counter = Counter()  # non-zero exits we did not cause, by first stderr line
        self.n = 0
        self.kills = Counter()

    # --- processes ---------------------------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "letta_cli", "-q", "-w", str(self.root), *args]

    def start_producer(self) -> None:
        self.n += 1
        body = f"{'fwd' if self.n % 2 else 'msg'} m{self.n}"
        agent = AGENTS[self.n % len(AGENTS)]
        proc = subprocess.Popen(
            self.argv("send", agent, body, "--no-wait"), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.inflight[proc] = body

    def reap_producers(self, block: bool = False) -> None:
        for proc, body in list(self.inflight.items()):
            if block:
                proc.wait()
            if proc.poll() is None:
                continue
            err = proc.stderr.read().decode(errors="replace")
            proc.stderr.close()
            del self.inflight[proc]
            if proc.returncode == 0:
                self.sent.append(body)
            elif proc.returncode == -signal.SIGKILL:
                self.unknown.append(body)
            else:
                self.unknown.append(body)
                self.failed[(err.splitlines() or ["(no message)"])[0][:160]] += 1

    def serving(self) -> bool:
        try:
            fields = (self.root / ".agents" / "scheduler.pid").read_text().split()  # "<pid> <role>"
            return int(fields[0]) == self.scheduler.pid
        except (OSError, ValueError, IndexError):
            return False

    def start_scheduler(self) -> None:
        self.scheduler = subprocess.Popen(
            self.argv("run", "--watch"), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    # --- the soak ----------------------------------------------------------------------------------

    def setup(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "agents.toml").write_text(CONFIG.format(max_attempts=self.attempts))
        for name in AGENTS:
            write_agent(self.root, name)
        self.llm.default = model(random.Random(self.rng.random()))
        self.llm.start()
        # clients SIGKILLed mid-request make the fake server's threads log tracebacks: that is the point here
        self.llm._server.handle_error = lambda request, client_address: None
        self.env["OPENAI_BASE_URL"] = self.llm.url

    def cycle(self, i: int) -> None:
        """Start the scheduler, let it serve a random while under producer load, then SIGKILL it (and,
        sometimes, a producer in mid-send)."""
        self.start_scheduler()
        deadline = time.monotonic() + 30
        while not self.serving() and self.scheduler.poll() is None and time.monotonic() < deadline:
            self.keep_producing()
            time.sleep(0.01)
        # a storm kills 0.2-0.9 s into serving: mostly while the first turns still load the model SDK
        kill_at = time.monotonic() + (self.rng.uniform(0.2, 0.9) if self.storm else self.rng.uniform(0.0, 0.6))
        while time.monotonic() < kill_at:
            self.keep_producing()
            time.sleep(0.01)
        if self.scheduler.poll() is None:
            self.scheduler.kill()
            self.kills["scheduler"] += 1
        elif self.scheduler.returncode != 0:
            self.failed[
                f"scheduler exited {self.scheduler.returncode}: " + self.scheduler.stderr.read().decode()[:120]
            ] += 1
        self.scheduler.wait()
        self.scheduler.stderr.close()
        if self.inflight and self.rng.random() < 0.3:
            victim = self.rng.choice(list(self.inflight))
            if victim.poll() is None:
                victim.kill()
                self.kills["producer"] += 1
        self.reap_producers()
        if self.verbose:
            print(f"cycle {i + 1}/{self.cycles}: sent {len(self.sent)} kills {dict(self.kills)}", file=sys.stderr)

    def keep_producing(self) -> None:
        self.reap_producers()
        while len(self.inflight) < self.producers:
            self.start_producer()

    def drain(self) -> subprocess.CompletedProcess:
        self.reap_producers(block=True)
        return subprocess.run(self.argv("run"), env=self.env, capture_output=True, timeout=600)

    def books(self, drain: subprocess.CompletedProcess) -> dict:
        seen: Counter = Counter()
        relays: Counter = Counter()
        for name in AGENTS:
            path = self.root / ".agents" / "history" / f"{name}.jsonl"
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                if entry["role"] != "user":
                    continue
                content = entry["content"]
                if "relay " in content:
                    relays[content.rsplit("relay ", 1)[1]] += 1
                else:
                    seen[content] += 1
        dead_bodies = set()
        dead_restarts = 0
        dead_dir = self.root / ".agents" / "queue" / "dead"
        for path in dead_dir.glob("*.json") if dead_dir.exists() else []:
            if path.name.endswith(".error.json"):
                continue
            body = json.loads(path.read_text())["body"]
            reason = json.loads(path.with_name(path.stem + ".error.json").read_text()).get("error")
            dead_restarts += bool(reason and "the process died" in reason)
            if reason:
                dead_bodies.add(body.rsplit("relay ", 1)[-1] if "relay " in body else body)
        lost = [b for b in self.sent if seen[b] == 0 and b not in dead_bodies]
        duplicated = [b for b, n in seen.items() if n > 1]
        forwarded = [b for b in seen if b.startswith("fwd ")]
        relay_lost = [
            b for b in forwarded if relays[b.removeprefix("fwd ")] == 0 and b.removeprefix("fwd ") not in dead_bodies
        ]
        relay_dup = [b for b, n in relays.items() if n > 1]
        try:
            check_state(self.root)
            intact = "yes"
        except AssertionError as exc:
            intact = str(exc)
        return {
            "cycles": self.cycles,
            "kills": sum(self.kills.values()),
            "scheduler_kills": self.kills["scheduler"],
            "producer_kills": self.kills["producer"],
            "sent": len(self.sent),
            "sends_unconfirmed": len(self.unknown),
            "handled": sum(1 for b in self.sent if seen[b] >= 1),
            "handled_unconfirmed": sum(1 for b in self.unknown if seen[b] >= 1),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "dead": len(dead_bodies),
            "dead_restarts": dead_restarts,
            "relayed": sum(1 for n in relays.values() if n >= 1),
            "relay_lost": len(relay_lost),
            "relay_duplicated": len(relay_dup),
            "model_requests": len(self.llm.requests),
            "send_failures": dict(self.failed),
            "final_drain_exit": drain.returncode,
            "state_intact": intact,
            "examples": {"lost": lost[:5], "duplicated": duplicated[:5], "relay_lost": relay_lost[:5]},
        }

    def run(self) -> dict:
        self.setup()
        started = time.monotonic()
        try:
            for i in range(self.cycles):
                self.cycle(i)
            drain = self.drain()
        finally:
            for proc in [*self.inflight, *([self.scheduler] if self.scheduler else [])]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.llm.stop()
        figures = self.books(drain)
        figures["seconds"] = round(time.monotonic() - started, 1)
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cycles", type=int, help="kill/restart cycles")
    parser.add_argument("--producers", type=int, default=3, help="sends in flight at once (default 3)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--workspace", type=Path, default=None, help="where to run (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per cycle on stderr")
    parser.add_argument("--storm", action="store_true", help="kill each scheduler 0.2-0.9 s into serving")
    parser.add_argument("--max-attempts", type=int, default=5, help="limits.max_attempts (default 5)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    root = args.workspace or Path(tempfile.mkdtemp(prefix="letta-soak-")) / "ws"
    figures = Soak(root, args.cycles, args.producers, seed, args.verbose, args.storm, args.max_attempts).run()
    figures["seed"] = seed
    figures["workspace"] = str(root)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:>20}: {value}")
    ok = figures["lost"] == 0 and figures["duplicated"] == 0 and figures["relay_lost"] == 0
    ok = ok and figures["dead_restarts"] == 0
    ok = (
        ok
        and figures["relay_duplicated"] == 0
        and figures["state_intact"] == "yes"
        and figures["final_drain_exit"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
