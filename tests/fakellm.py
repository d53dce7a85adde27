"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

The real openai SDK talks to it over real HTTP. Tests decide, per agent, what the "model" answers:

    llm.script("alice", [call("core_memory_append", label="notes", content="x"), text("done")])
    llm.on("bob", lambda req: text("pong"))        # or a function of the request body
    llm.fault_rate = 0.3                            # 429/500/timeouts/disconnects, seeded

Every request body is recorded (llm.requests), with the agent it was for, so tests can check exactly
what the model was sent. Usage numbers returned are recorded too (llm.usage_sent).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AGENT_RE = re.compile(r'You are agent "([^"]+)"')


@dataclass
class Reply:
    """What the fake model does for one request."""

    content: str | None = None
    tool_calls: list[dict] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    disconnect: bool = False
    retry_after: float | None = None
    raw: Any = None  # a full JSON body to send instead (for malformed responses)


def text(content: str, delay: float = 0.0) -> Reply:
    return Reply(content=content, delay=delay)


def call(name: str, _raw_args: str | None = None, _delay: float = 0.0, **args: Any) -> Reply:
    arguments = _raw_args if _raw_args is not None else json.dumps(args)
    return Reply(tool_calls=[{"name": name, "arguments": arguments}], delay=_delay)


def calls(*pairs: tuple[str, dict]) -> Reply:
    return Reply(tool_calls=[{"name": n, "arguments": json.dumps(a)} for n, a in pairs])


def error(status: int, retry_after: float | None = None) -> Reply:
    return Reply(status=status, retry_after=retry_after)


def agent_of(body: dict) -> str:
    for msg in body.get("messages", []):
        if msg.get("role") == "system":
            m = AGENT_RE.search(msg.get("content") or "")
            if m:
                return m.group(1)
    return "?"


def last_user_text(body: dict) -> str:
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") in ("user", "system") and msg is not body["messages"][0]:
            return msg.get("content") or ""
    return ""


def tool_results(body: dict) -> list[str]:
    """The tool results of the current turn so far (after the last non-tool, non-assistant message)."""
    out: list[str] = []
    for msg in reversed(body.get("messages", [])):
        if msg.get("role") == "tool":
            out.append(msg.get("content") or "")
        elif msg.get("role") == "assistant":
            continue
        else:
            break
    return list(reversed(out))


class FakeLLM:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.usage_sent: list[dict] = []
        self.handlers: dict[str, Callable[[dict], Reply]] = {}
        self.scripts: dict[str, list[Reply]] = {}
        self.default: Callable[[dict], Reply] = lambda body: text(f"ok from {agent_of(body)}")
        self.fault_rate = 0.0
        self.fault_kinds = ("429", "500", "timeout", "disconnect")
        self.timeout_delay = 3.0
        self.random = random.Random(1234)
        self.cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._call_ids = 0

    # --- scripting ---------------------------------------------------------------------------------

    def script(self, agent: str, replies: list[Reply]) -> None:
        with self.cond:
            self.scripts.setdefault(agent, []).extend(replies)

    def on(self, agent: str, handler: Callable[[dict], Reply]) -> None:
        self.handlers[agent] = handler

    def requests_for(self, agent: str) -> list[dict]:
        with self.cond:
            return [r for r in self.requests if agent_of(r) == agent]

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")

    def _decide(self, body: dict) -> Reply:
        with self.cond:
            self.requests.append(body)
            self.cond.notify_all()
            if self.fault_rate and self.random.random() < self.fault_rate:
                kind = self.random.choice(self.fault_kinds)
                return {
                    "429": Reply(status=429, retry_after=0.01),
                    "500": Reply(status=500),
                    "timeout": Reply(content="late", delay=self.timeout_delay),
                    "disconnect": Reply(disconnect=True),
                }[kind]
            agent = agent_of(body)
            queue = self.scripts.get(agent)
            if queue:
                return queue.pop(0)
        handler = self.handlers.get(agent, self.default)
        return handler(body)

    # --- HTTP --------------------------------------------------------------------------------------

    def _response_body(self, body: dict, reply: Reply) -> dict:
        if reply.raw is not None:
            return reply.raw
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            with self.cond:
                self._call_ids += 1
                base = self._call_ids
            message["tool_calls"] = [
                {"id": f"call_{base}_{i}", "type": "function", "function": tc} for i, tc in enumerate(reply.tool_calls)
            ]
        prompt = len(json.dumps(body.get("messages", []))) // 4 + 1
        completion = len(json.dumps(message)) // 4 + 1
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        with self.cond:
            self.usage_sent.append({"agent": agent_of(body), **usage})
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
            ],
            "usage": usage,
        }

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each response stalls ~40 ms on delayed ACKs

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = fake._decide(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.disconnect:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if reply.status != 200:
                    headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else {}
                    self._send(reply.status, {"error": {"message": f"fake error {reply.status}"}}, headers)
                    return
                self._send(200, fake._response_body(body, reply))

            def _send(self, status: int, obj: Any, headers: dict | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

        self._server = Server(("127.0.0.1", 0), Handler)
        # a short poll interval: stop() waits up to one interval, and every test using the server pays it
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
