"""The local model's server: llama-cpp-python's OpenAI-compatible server with our chat handler, `letta-chatml`.

Run as `python -m letta_cli.model.llama_server --model X.gguf --chat_format letta-chatml ...` (model/local.py
builds the command); it takes llama_cpp.server's flags. This is the only module that imports llama_cpp, and only
the server process imports it.

The handler renders the prompt with model/chat_template.py (plain ChatML, nothing escaped) and supports what the
engine asks for: tool_choice "auto", "none" and a forced function, one tool call per answer. A forced call is
generated under a grammar built from the tool's JSON schema, so its arguments always parse. Usage reports
`prompt_tokens_details.cached_tokens`: the prompt tokens the server did not evaluate because it had evaluated
that prefix before (bench/local_model.py compares them with the tokens sent).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from letta_cli.model import chat_template, free_cpus, llama_command, weights

HANDLER_NAME = "letta-chatml"
MIN_CALL_TOKENS = 200  # a tool call cut by max_tokens is useless, so calls may use at least this many
DEFAULT_TEMPERATURE = 0.2  # for requests that set none (SmolLM2's advice; llama-cpp-python's server says 0.8)
NO_BIAS = -100.0  # a logit bias that rules a token out
# For requests that set none: else a rambling small model writes until the context ends. SmolLM2-135M's answers
# past ~100 tokens are rambles (code, lists of made-up items), and each token costs ~30 ms on 2 cores.
DEFAULT_MAX_TOKENS = 128


class _EvalCounter:
    """Counts the tokens each completion evaluates: wraps the model's `eval`, whose first call in a completion
    gets every prompt token after the cached prefix (llama_cpp.Llama.generate)."""

    def __init__(self, llama: Any):
        self.calls: list[int] = []
        original = llama.eval

        def counted(tokens: Any) -> Any:
            self.calls.append(len(tokens))
            return original(tokens)

        llama.eval = counted

    def start(self) -> None:
        self.calls.clear()

    def prompt_evaluated(self) -> int:
        return self.calls[0] if self.calls else 0


def _counter(llama: Any) -> _EvalCounter:
    counter = getattr(llama, "_letta_eval_counter", None)
    if counter is None:
        counter = _EvalCounter(llama)
        llama._letta_eval_counter = counter
    return counter


OBJECT_START = 'root ::= "{" space '  # how json_schema_to_gbnf's grammar of an object begins


@functools.lru_cache(maxsize=64)
def _grammar_text(schema: str, first: tuple[str, ...]) -> str:
    """The arguments object after its opening brace, which the prompt ends with (chat_template.call_prefix):
    a space, then the properties."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    rules = str(json_schema_to_gbnf(schema, list(first)))
    if OBJECT_START not in rules:
        raise ValueError("a tool's parameters must be a JSON object schema")
    return rules.replace(OBJECT_START, 'root ::= " " ', 1)


def _grammar(schema: dict[str, Any]) -> Any:
    """The grammar of a call's arguments. Properties with a choice of values (an enum: the agent to message,
    the block to edit) come first, so the model picks them right after reading the request, before it writes
    a long text that would pull it elsewhere."""
    from llama_cpp.llama_grammar import LlamaGrammar

    props = dict(schema.get("properties") or {})
    first = tuple(k for k, v in props.items() if isinstance(v, dict) and "enum" in v)
    for name in schema.get("required") or []:  # an empty list where one is required is never what a tool wants
        prop = props.get(name)
        if isinstance(prop, dict) and prop.get("type") == "array" and "minItems" not in prop:
            props[name] = {**prop, "minItems": 1}
    schema = {**schema, "properties": props}
    return LlamaGrammar.from_string(_grammar_text(json.dumps(schema, sort_keys=True), first), verbose=False)


def forced_name(tool_choice: Any, names: set[str]) -> str | None:
    """The function tool_choice forces, or None for "auto"/"none"; an unknown one is a bad request."""
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name")
        if name not in names:
            raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
        return str(name)
    if tool_choice == "required" and len(names) == 1:
        return next(iter(names))
    return None


class _Generation:
    """One chat completion: the prompt calls it makes to the model, and what they cost."""

    def __init__(self, llama: Any, sampling: dict[str, Any]):
        self.llama = llama
        self.sampling = sampling
        self.counter = _counter(llama)
        self.prompt_tokens = 0
        self.evaluated = 0
        self.completion_tokens = 0

    def run(
        self, prompt: str, *, max_tokens: int | None, stop: list[str], grammar: Any = None, bias: Any = None
    ) -> tuple[str, str]:
        """Complete `prompt`; (text, finish_reason). The first call's prompt is what usage reports as sent."""
        self.counter.start()
        out = self.llama.create_completion(
            prompt=prompt,
            max_tokens=max_tokens,
            stop=stop,
            grammar=grammar,
            logit_bias=bias,
            stream=False,
            **self.sampling,
        )
        usage = out.get("usage") or {}
        if not self.prompt_tokens:
            self.prompt_tokens = int(usage.get("prompt_tokens", 0))
        self.evaluated += self.counter.prompt_evaluated()
        self.completion_tokens += int(usage.get("completion_tokens", 0))
        choice = out["choices"][0]
        return str(choice.get("text") or ""), str(choice.get("finish_reason") or "stop")

    def call(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], name: str, max_tokens: int | None
    ) -> str:
        """The arguments of a forced call of `name`, as JSON text that matches its schema."""
        fn = next(t["function"] for t in tools if t["function"]["name"] == name)
        prompt = chat_template.render_prompt(messages, tools, forced=name)
        budget = max(max_tokens or 0, MIN_CALL_TOKENS)
        schema = chat_template.bind_named_choices(fn_schema(fn), chat_template.request_text(messages))
        text, _ = self.run(prompt, max_tokens=budget, stop=[chat_template.END], grammar=_grammar(schema))
        text = "{" + text  # the prompt ends with the brace
        try:  # as generated (chat_template.call_text reads them back as written: the next prompt's prefix)
            json.loads(text)
            return text.strip()
        except ValueError:
            pass
        try:  # the grammar lets raw control characters into strings; send them escaped
            return json.dumps(json.loads(text, strict=False), ensure_ascii=False)
        except ValueError:  # cut off by the token limit: the tool reports it to the model
            return text.strip()

    def text(self, prompt: str, max_tokens: int | None, stop: list[str]) -> tuple[str, str]:
        """A text answer with no tool call: if the model starts one anyway (it only stopped at `<tool_call>` or
        a bare `{"name":`, having said nothing), ask again with `<`, `{` and `[` ruled out."""
        text, finish = self.run(prompt, max_tokens=max_tokens, stop=[*stop, chat_template.CALL_OPEN])
        text = chat_template.before_stop(text)
        if not text:
            ruled_out = ("<", " <", "</", "{", " {", "[", " [", "[{")  # markup, and calls written as bare JSON
            bias = {t: NO_BIAS for s in ruled_out for t in self.llama.tokenize(s.encode(), add_bos=False)[:1]}
            text, finish = self.run(prompt, max_tokens=max_tokens, stop=stop, bias=bias)
        return (chat_template.whole_sentences(text) if finish == "length" else text.strip()), finish

    def usage(self) -> dict[str, Any]:
        cached = max(0, self.prompt_tokens - self.evaluated)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        }


def fn_schema(fn: dict[str, Any]) -> dict[str, Any]:
    return chat_template.parameters(fn)


def letta_chatml(
    *,
    llama: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: Any = None,
    temperature: float = 0.2,
    top_p: float = 0.95,
    top_k: int = 40,
    min_p: float = 0.05,
    typical_p: float = 1.0,
    stream: bool = False,
    stop: str | list[str] | None = None,
    seed: int | None = None,
    max_tokens: int | None = None,
    presence_penalty: float = 0.0,
    frequency_penalty: float = 0.0,
    repeat_penalty: float = 1.1,
    model: str | None = None,
    **_: Any,
) -> dict[str, Any]:
    """The chat handler llama_cpp calls for every /v1/chat/completions request (non-streaming)."""
    if stream:
        raise ValueError(f"the {HANDLER_NAME} chat format does not stream; send stream=false")
    tools = [t for t in tools or [] if t.get("type", "function") == "function" and t.get("function")]
    max_tokens = max_tokens or DEFAULT_MAX_TOKENS
    names = {t["function"]["name"] for t in tools}
    forced = forced_name(tool_choice, names) if tools else None
    allow_calls = bool(tools) and tool_choice != "none"
    sampling = {
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "min_p": min_p,
        "typical_p": typical_p,
        "presence_penalty": presence_penalty,
        "frequency_penalty": frequency_penalty,
        "repeat_penalty": repeat_penalty,
        "seed": seed,
        "model": model,
    }
    if _threads is not None:
        _threads.attach(llama)
    gen = _Generation(llama, sampling)
    stops = [chat_template.END, *chat_template.MARKUP_STOPS, *([stop] if isinstance(stop, str) else stop or [])]
    content: str | None = None
    calls: list[tuple[str, str]] = []
    finish = "stop"
    if forced is not None:
        calls.append((forced, gen.call(messages, tools, forced, max_tokens)))
    else:
        prompt = chat_template.render_prompt(messages, tools)
        if allow_calls:
            text, finish = gen.run(prompt, max_tokens=max_tokens, stop=[*stops, chat_template.CALL_CLOSE])
            head, args, name = chat_template.parse_call(text, names)
            head = chat_template.before_stop(head)
            if name is not None and args is not None:  # arguments that do not fit: generated again, bound
                fn = next(t["function"] for t in tools if t["function"]["name"] == name)
                args = args if chat_template.fits(args, fn_schema(fn)) else None
            if name is not None:
                arguments = json.dumps(args) if args is not None else gen.call(messages, tools, name, max_tokens)
                calls.append((name, arguments))
                content = head or None
            elif head.strip():
                content = chat_template.whole_sentences(head) if finish == "length" else head.strip()
            else:  # nothing before a stop (copied markup, an unknown tool): answer in text, `<` ruled out if need be
                content, finish = gen.text(prompt, max_tokens, stops)
        else:
            content, finish = gen.text(prompt, max_tokens, stops)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function", "function": {"name": n, "arguments": a}}
            for n, a in calls
        ]
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or "local",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": gen.usage(),
    }


WATCH_INTERVAL = 2.0  # seconds between looks at the folder of --exit_without


def our_flags(argv: list[str]) -> tuple[list[str], Any]:
    """The command line for llama_cpp's server without the launcher's own flags, and those flags:
    `threads_free` (the most threads the model may take, fitted to the free CPUs; None: fixed),
    `exit_without` (a folder: the workspace's state folder).

    `--weights_from SOURCE`: make the file `--model` names from SOURCE first (model/weights.py); if that
    fails, serve SOURCE as it is."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(llama_command.WEIGHTS_FROM_FLAG)
    parser.add_argument(llama_command.THREADS_FREE_FLAG, type=int)
    parser.add_argument(llama_command.EXIT_WITHOUT_FLAG)
    ours, rest = parser.parse_known_args(argv[1:])
    args = [argv[0], *rest]
    if ours.weights_from and "--model" in args[:-1]:
        model = args.index("--model") + 1
        try:
            weights.make_copy(Path(ours.weights_from), Path(args[model]))
        except OSError as e:
            print(f"letta-cli: serving {ours.weights_from} as it is: {e}", file=sys.stderr, flush=True)
            args[model] = ours.weights_from
    return args, ours


def exit_without(folder: str) -> None:
    """Exit the server once `folder` is deleted or replaced by another (a daemon thread looks every 2 s): a
    workspace removed with `rm -rf` would otherwise leave its server running, with nothing to stop it."""
    try:
        first = os.stat(folder).st_ino
    except OSError:
        return

    def watch() -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            try:
                gone = os.stat(folder).st_ino != first
            except OSError:
                gone = True
            if gone:
                print(f"letta-cli: {folder} is gone; the server stops", file=sys.stderr, flush=True)
                os._exit(0)

    threading.Thread(target=watch, name="exit-without", daemon=True).start()


class _Threads:
    """Fits the model's threads to the CPUs other processes leave free (model/free_cpus.py) before each of its
    evaluations: each batch of prompt tokens and each token written. So a count taken while the requesting
    process was still busy (importing, building the request) is put right within the first half second."""

    def __init__(self, free: free_cpus.FreeCpus, set_threads: Callable[[Any, int], None] | None = None):
        self.free = free
        self.set_threads = set_threads or _set_llama_threads
        self.current = 0

    def attach(self, llama: Any) -> None:
        """Wrap the model's `eval` (once) so that each batch it evaluates runs on the CPUs free then (the
        counter of evaluated tokens, `_EvalCounter`, wraps this and still sees a prompt as one call)."""
        if getattr(llama, "_letta_threads", None) is self:
            return
        original = llama.eval

        def fitted(tokens: Any) -> None:
            for start in range(0, len(tokens), llama.n_batch):  # as Llama.eval batches them, one call a batch
                self.fit(llama)
                original(tokens[start : start + llama.n_batch])

        llama.eval = fitted
        llama._letta_threads = self

    def fit(self, llama: Any) -> None:
        n, busy = self.free.count()
        if n != self.current:
            self.set_threads(llama, n)
            self.current = n
            # in the server's log: why a completion ran slower or faster than the one before
            print(
                f"letta-cli: {n} thread(s) from now on; other processes used {busy:.1f} CPUs",
                file=sys.stderr,
                flush=True,
            )


def _set_llama_threads(llama: Any, n: int) -> None:
    import llama_cpp

    llama_cpp.llama_set_n_threads(llama._ctx.ctx, n, n)


_threads: _Threads | None = None  # set by main() when the threads adapt


def main() -> None:
    """Register the handler, let the usage carry `prompt_tokens_details`, and run llama_cpp's server."""
    from llama_cpp import llama_chat_format, llama_types
    from pydantic import ConfigDict

    global _threads
    sys.argv, ours = our_flags(sys.argv)
    if ours.threads_free:
        _threads = _Threads(free_cpus.FreeCpus(free_cpus.usable_cpus(), ours.threads_free))
    if ours.exit_without:
        exit_without(ours.exit_without)

    # The server's response model is a TypedDict; without this, pydantic drops keys it does not declare.
    llama_types.CompletionUsage.__pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[attr-defined]
    llama_chat_format.register_chat_completion_handler(HANDLER_NAME)(letta_chatml)

    from llama_cpp.server.__main__ import main as serve

    serve()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
