"""Issue 15, a full disk: a history append that does not fit is cut back off and stops the scheduler (exit 8),
so no line is torn and the next append does not join onto half a line; once there is room again every turn
is in the history exactly once. The disk is real: a 16 KiB tmpfs mounted on .agents/history/ in a private
mount namespace (skipped where the test cannot mount one)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI
from tests.fakellm import text
from tests.harness import write_agent

FIRST, SECOND = "a" * 3000, "b" * 2000  # the second turn's lines cross the history file's first page

SCRIPT = """
set -u
H="$WS/.agents/history"
mkdir -p "$H"
mount -t tmpfs -o size=16k,mode=0700 tmpfs "$H" || exit 99
$AGENTS send alice "$FIRST" >/dev/null; echo "first=$?"
head -c 1000000 /dev/zero > "$H/filler" 2>/dev/null  # the disk is full; alice.jsonl's last page has room
$AGENTS send alice "$SECOND" >/dev/null 2>"$WS/second.err"; echo "second=$?"
cp "$H/alice.jsonl" "$WS/when-full.jsonl"
rm "$H/filler"
$AGENTS run; echo "run=$?"
$AGENTS send alice third >/dev/null; echo "third=$?"
cp "$H/alice.jsonl" "$WS/final.jsonl"
"""


def namespace() -> list[str] | None:
    """How to run a shell in a mount namespace of its own, or None if this machine does not let us."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt || exit 1"], capture_output=True)
    return prefix if probe.returncode == 0 else None


def lines_of(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n"), "the history must end on a whole line"
    return [json.loads(line) for line in raw.splitlines()]  # every line parses: none torn, none joined


def test_a_full_disk_never_tears_a_history_line(cli: CLI, ws: Path, llm):
    prefix = namespace()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (no mount namespace)")
    write_agent(ws, "alice")
    llm.default = lambda body: text("ack")
    env = {**cli.env, "WS": str(ws), "AGENTS": shlex.join(cli.argv()), "FIRST": FIRST, "SECOND": SECOND}
    proc = subprocess.run([*prefix, "sh", "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    codes = dict(line.split("=") for line in proc.stdout.split())
    assert codes == {"first": "0", "second": "8", "run": "0", "third": "0"}, (proc.stdout, proc.stderr)
    err = (ws / "second.err").read_text().strip()
    assert err.startswith("agents: error: ") and "No space left" in err and "\n" not in err, err
    full = lines_of(ws / "when-full.jsonl")
    assert [e["content"] for e in full if e["role"] == "user"] == [FIRST]  # the half-written turn is cut back off
    final = lines_of(ws / "final.jsonl")
    assert [e["content"] for e in final if e["role"] == "user"] == [FIRST, SECOND, "third"]
