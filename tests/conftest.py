"""Shared fixtures: a fresh workspace, the scripted model server, and a runner for the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakellm import FakeLLM

REPO = Path(__file__).resolve().parent.parent
# The suite's senders serve in-process (as with AGENTS_DAEMON=0 in a shell): a scheduler daemon outliving a test
# would hold its workspace's lock. tests/test_daemon.py turns it on where it tests the daemon.
os.environ["AGENTS_DAEMON"] = "0"
# The local model's Q8_0 copy of its weights (model/weights.py) is made once for all the suite's servers, in a
# cache of the suite's own rather than the user's (or each test's $HOME).
os.environ["XDG_CACHE_HOME"] = str(Path(tempfile.gettempdir()) / f"letta-cli-tests-{os.getuid()}" / "cache")


@pytest.fixture
def llm():
    server = FakeLLM()
    server.start()
    yield server
    server.stop()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        import json

        return json.loads(self.out)


def fails(res: Result, code: int, *needles: str) -> str:
    """A user error: the documented exit code, one clear line on stderr, never a traceback."""
    assert res.code == code, f"expected exit {code}, got {res.code}: {res.err}"
    assert "Traceback" not in res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {res.err!r}"
    assert lines[0].startswith("agents: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


class CLI:
    """Runs the real `agents` command in a subprocess against one workspace."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "letta_cli", "-w", str(self.root), *args]

    def __call__(
        self, *args: str, input: str | bytes | None = None, timeout: float = 60, env: dict | None = None
    ) -> Result:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            self.argv(*args), input=data, capture_output=True, timeout=timeout, env={**self.env, **(env or {})}
        )
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    def popen(self, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env={**self.env, **(env or {})}, **kw)

    def ok(self, *args: str, **kw) -> Result:
        res = self(*args, **kw)
        assert res.code == 0, f"agents {' '.join(args)} exited {res.code}: {res.err}"
        return res


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTS_", "LETTA_CLI_"))}
    env["PYTHONPATH"] = str(REPO)
    env["HOME"] = str(tmp_path / "home")
    env["NO_COLOR"] = "1"
    env["AGENTS_NO_LOCAL_DEFAULT"] = "1"  # never start the embedded model server by accident
    env["AGENTS_DAEMON"] = "0"  # serve in-process (tests/test_daemon.py turns the daemon on)
    return env


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "agents.d").mkdir()
    return root


@pytest.fixture
def cli(ws: Path, tmp_path: Path, llm: FakeLLM) -> CLI:
    """The CLI, pointed at a fresh workspace whose model endpoint is the fake server."""
    env = base_env(tmp_path)
    env["OPENAI_BASE_URL"] = llm.url
    env["OPENAI_API_KEY"] = "sk-test-fake"
    (ws / "agents.toml").write_text(
        'version = 1\nmodel = "fake-model"\n[limits]\nretry_backoff = 0.05\nmodel_retries = 2\nmodel_timeout = 2\n'
    )
    return CLI(ws, env)


@pytest.fixture
def offline_cli(ws: Path, tmp_path: Path) -> CLI:
    """The CLI with no model endpoint at all (for commands that never call a model)."""
    return CLI(ws, base_env(tmp_path))
