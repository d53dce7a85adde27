"""The model client: the openai SDK's chat completions with tools, against any compatible endpoint.

Retries with backoff on 429, 5xx, connection errors and timeouts (honouring Retry-After) are the SDK's own
(`max_retries`); we only classify what is left, and turn a response of the wrong shape into a ModelFailure.
The openai import happens here, on the paths that call a model, never at CLI start-up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from letta_cli.core.errors import ModelFailure
from letta_cli.core.models import Usage
from letta_cli.core.secrets import redact
from letta_cli.model.endpoint import Endpoint, NoEndpoint

if TYPE_CHECKING:
    from openai import AsyncOpenAI


@dataclass
class Completion:
    content: str | None
    tool_calls: list[dict[str, Any]]  # [{"id", "type": "function", "function": {"name", "arguments"}}]
    usage: Usage
    duration: float
    cached_tokens: int = 0  # of the prompt tokens, those the server had evaluated before (if it says)


POOL_MAX = 8  # AsyncOpenAI clients per endpoint at most
PER_CLIENT = 16  # requests in flight on each before another client is opened


class ModelClient:
    """AsyncOpenAI clients per endpoint, shared by all turns on the event loop: one, and more (up to POOL_MAX)
    while many requests are in flight. One client's connection pool looks at every idle connection each time
    a request is assigned, so its cost grows with the square of the requests in flight (docs/benchmarks.md)."""

    def __init__(self, timeout: float, retries: int):
        self.timeout = timeout
        self.retries = retries
        self._clients: dict[tuple[str | None, str], list[AsyncOpenAI]] = {}
        self._load: dict[tuple[str | None, str], list[int]] = {}

    def prepare(self, endpoint: Endpoint) -> None:
        """Import the SDK and build the endpoint's first client now (the import takes most of a second)."""
        self._pick(endpoint)

    def _pick(self, endpoint: Endpoint) -> tuple[list[int], int]:
        """The least busy client of the endpoint (a new one if all are busy): its load list and index."""
        key = (endpoint.base_url, endpoint.api_key)
        clients = self._clients.setdefault(key, [])
        load = self._load.setdefault(key, [])
        best = min(range(len(load)), key=load.__getitem__, default=None)
        if best is None or (load[best] >= PER_CLIENT and len(clients) < POOL_MAX):
            from openai import AsyncOpenAI

            clients.append(
                AsyncOpenAI(
                    api_key=endpoint.api_key, base_url=endpoint.base_url, timeout=self.timeout, max_retries=self.retries
                )
            )
            load.append(0)
            best = len(clients) - 1
        return load, best

    async def complete(
        self,
        endpoint: Endpoint,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        tool_choice: str | dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        # The request is JSON-ready already, so it goes in as extra_body: the SDK's recursive transform of typed
        # params (most of its CPU on a 100-agent broadcast) has nothing to walk. The body sent is the same, byte
        # for byte: its keys in the SDK's order (model, messages, max_tokens, temperature, tool_choice, tools).
        body: dict[str, Any] = {"messages": messages}
        if max_tokens is not None:  # max_tokens, not max_completion_tokens: llama.cpp ignores the latter
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if tools:  # strict servers reject tool_choice without tools
            body["tool_choice"] = tool_choice or "auto"
            body["tools"] = tools
        load, i = self._pick(endpoint)
        client = self._clients[(endpoint.base_url, endpoint.api_key)][i]
        load[i] += 1
        started = time.monotonic()
        try:
            response = await client.chat.completions.create(model=endpoint.model, messages=[], extra_body=body)
        finally:
            load[i] -= 1
        duration = time.monotonic() - started
        content, calls = _reply(response)
        u = getattr(response, "usage", None)
        usage = Usage(
            prompt_tokens=_count(getattr(u, "prompt_tokens", 0)),
            completion_tokens=_count(getattr(u, "completion_tokens", 0)),
            model_calls=1,
        )
        details = getattr(u, "prompt_tokens_details", None)
        return Completion(content, calls, usage, duration, _count(getattr(details, "cached_tokens", 0)))

    async def close(self) -> None:
        for clients in self._clients.values():
            for client in clients:
                await client.close()
        self._clients.clear()
        self._load.clear()


def _reply(response: Any) -> tuple[str | None, list[dict[str, Any]]]:
    """The text and tool calls of a response; a response of the wrong shape is a ModelFailure (the SDK does not
    validate what a compatible server sends)."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise ModelFailure("the model returned no choices")
    if not isinstance(choices, list):
        raise ModelFailure(f"the model's choices are not a list (got {type(choices).__name__})")
    message = getattr(choices[0], "message", None)
    if message is None or isinstance(message, str | int | float | list | dict):
        raise ModelFailure("the model's response has no message")
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise ModelFailure(f"the model's reply is not text (got {type(content).__name__})")
    tool_calls = getattr(message, "tool_calls", None) or []
    if not isinstance(tool_calls, list):
        raise ModelFailure(f"the model's tool calls are not a list (got {type(tool_calls).__name__})")
    calls = []
    for i, tc in enumerate(tool_calls):
        fn = getattr(tc, "function", None)
        arguments = getattr(fn, "arguments", "") or ""
        if not isinstance(arguments, str):  # some servers send an object instead of JSON text
            try:
                arguments = json.dumps(arguments, default=str)
            except (ValueError, RecursionError):
                raise ModelFailure("the model's tool-call arguments cannot be read") from None
        call_id = getattr(tc, "id", None)
        calls.append(
            {
                "id": utf8(str(call_id)) if call_id else f"call_{i}",
                "type": "function",
                "function": {"name": utf8(str(getattr(fn, "name", "") or "")), "arguments": json_utf8(arguments)},
            }
        )
    return (None if content is None else utf8(content)), calls


def utf8(text: str) -> str:
    """Text that can be written as UTF-8: a lone surrogate (half an emoji, cut by a server) becomes U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def json_utf8(arguments: str) -> str:
    """JSON text whose escapes may spell a lone surrogate (`\\ud83d`, half an emoji): with it replaced by
    U+FFFD, so what the arguments say can be stored (as they are if they hold none)."""
    arguments = utf8(arguments)
    if "\\u" not in arguments.lower():
        return arguments
    try:
        decoded = json.dumps(json.loads(arguments), ensure_ascii=False)
    except (ValueError, RecursionError):
        return arguments  # not JSON: the tool's validator says so to the model
    return arguments if utf8(decoded) == decoded else utf8(decoded)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def is_model_error(exc: BaseException) -> bool:
    """An error of the openai SDK: the endpoint refused, failed, timed out or could not be reached."""
    import openai

    return isinstance(exc, openai.OpenAIError)


def is_permanent(exc: BaseException) -> bool:
    """Errors no retry will fix: bad request, auth, unknown model. Everything else is worth another try."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code < 500 and exc.status_code not in (408, 409, 429)
    return isinstance(exc, NoEndpoint)


def describe(exc: BaseException) -> str:
    """One line for the error; known secrets blanked before the cut, so no part of one survives it."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return f"model endpoint answered HTTP {exc.status_code}: {redact(str(exc.message))[:300]}"
    if isinstance(exc, openai.APITimeoutError):
        return "model endpoint timed out"
    if isinstance(exc, openai.APIConnectionError):
        return redact(f"cannot reach the model endpoint: {exc}")
    return redact(f"{type(exc).__name__}: {exc}")[:500]
