"""The scripted FakeLLM (tests/fakellm.py) in its own process, for benchmarks where the model server must
not share the measured process's GIL: a real model server is another process too.

    python bench/_fakellm_server.py DELAY [RECORD]   prints its base URL on stdout, serves until stdin closes;
                                                     RECORD: a file to write the first request's body to

Replies: workers answer in plain text after DELAY seconds; an agent named "supervisor" first calls
send_message_to_agents_matching_all_tags(tags=["worker"]), then, once it has the tool's result, answers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import start_fakellm

from tests.fakellm import agent_of, call, text, tool_results

BROADCAST = "Report your status in one line."


def main() -> None:
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    record = Path(sys.argv[2]) if len(sys.argv) > 2 else None

    def reply(body: dict):
        if record is not None and not record.exists():
            record.write_text(json.dumps(body))
        agent = agent_of(body)
        if agent == "supervisor":
            if tool_results(body):
                return text("all workers reported")
            return call("send_message_to_agents_matching_all_tags", message=BROADCAST, tags=["worker"])
        return text(f"{agent}: all good", delay=delay)

    llm = start_fakellm()
    llm.default = reply
    print(llm.url, flush=True)
    sys.stdin.read()
    llm.stop()


if __name__ == "__main__":
    main()
