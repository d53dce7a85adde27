"""The random-kill soak (tools/soak.py), short: producers and the scheduler SIGKILLed at random times for 15
cycles, then a final drain. Nothing whose send exited 0 is lost, nothing is handled twice, and (max_attempts
at its default of 5) no message is dead-lettered for the restarts."""

import json
import subprocess
import sys

from tests.harness import REPO


def test_short_random_kill_soak(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "soak.py"),
            "15",
            "--json",
            "--seed",
            "7",
            "--workspace",
            str(tmp_path / "ws"),
        ],
        capture_output=True,
        timeout=110,
    )
    figures = json.loads(proc.stdout)
    assert figures["lost"] == 0 and figures["duplicated"] == 0, figures
    assert figures["dead_restarts"] == 0, figures  # issue 15: restarts never use up a message's attempts
    assert figures["relay_lost"] == 0 and figures["relay_duplicated"] == 0, figures
    assert figures["state_intact"] == "yes", figures["state_intact"]
    assert figures["final_drain_exit"] == 0
    assert figures["scheduler_kills"] == 15 and figures["sent"] > 0
    assert figures["handled"] + figures["dead"] >= figures["sent"]
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
