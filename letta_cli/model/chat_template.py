"""The prompt the local model reads: ChatML (SmolLM2's format) with the tools in the first system message.

Plain text in, plain text out: no template engine, so nothing is HTML-escaped (`<memory_blocks>` and `"` reach
the model as written). The tools are described at the start of the first system message, by name and without
the values their arguments may take (the other agents, the tags, the blocks: different for each agent), which
are said at the end of the system messages. The engine sends the agent's own prompt, then its memory
(engine/prompt.py, Letta's order); this format reads the memory first (`memory_first`); history and the new
message follow. So the server's prompt cache reuses the longest possible prefix: across agents with the
same tools and shared blocks, the tools and those blocks; within an agent's turns, everything up to what
changed. A tool call is one line, `<tool_call>{"name": ..,
"arguments": {..}}</tool_call>`, the format SmolLM2 was tuned on. model/llama_server.py serves it.
"""

from __future__ import annotations

import json
import re
from typing import Any

START, END = "<|im_start|>", "<|im_end|>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOLS_HEADER = (
    "# Tools\n"
    f'To use a tool, answer with one line {CALL_OPEN}{{"name": "TOOL", "arguments": {{...}}}}{CALL_CLOSE} '
    "and nothing else. The tools:"
)
CHOICES_HEADER = "The values the tools' arguments take:"
SENTENCE_ENDS = ".!?"
# The markup of the memory the engine sends (engine/prompt.py). A small model copies it into its answers
# (`<block label="team" ...>`, `<block_label>`); an answer ends where it starts.
# And it writes tool calls as bare JSON (`[{"name": "send_message_...", "arguments": ...`) where text is asked for.
MARKUP_STOPS = [
    "<memory_blocks", "</memory_blocks", "<block", "</block", "<value>", "</value>", "<description>", "<chars>", '{"name":',
]  # fmt: skip


def text_of(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content)


def describe_tools(tools: list[dict[str, Any]]) -> tuple[str, str]:
    """The tools section (one compact JSON line per function: name, description, parameters), in the order of
    their names, and the line of the values their arguments may take.

    The choices (`enum`s: the other agents, the tags in use, the agent's blocks) differ from agent to agent,
    so they are left out of the section, which is then the same for every agent with the same tools (one
    prefix that the server evaluates once for all of them), and said in a line of their own at the end of the
    system messages. A forced call's grammar still holds to the values of its own schema."""
    lines = [TOOLS_HEADER]
    choices: dict[str, list[Any]] = {}
    for fn in sorted((t.get("function") or {} for t in tools), key=lambda f: str(f.get("name", ""))):
        params, found = without_choices(parameters(fn))
        for key, values in found.items():
            choices[key if choices.get(key, values) == values else f"{fn.get('name', '')}.{key}"] = values
        entry = {"name": fn.get("name", ""), "description": fn.get("description", ""), "parameters": params}
        lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
    said = json.dumps(choices, ensure_ascii=False, separators=(",", ":")) if choices else ""
    return "\n".join(lines), f"{CHOICES_HEADER} {said}" if said else ""


def without_choices(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The parameters without the `enum` of each property (or of its items), and those enums by property."""
    props = params.get("properties")
    if not isinstance(props, dict):
        return params, {}
    kept: dict[str, Any] = {}
    found: dict[str, list[Any]] = {}
    for key, prop in props.items():
        if isinstance(prop, dict) and isinstance(prop.get("enum"), list):
            found[key] = prop["enum"]
            prop = {k: v for k, v in prop.items() if k != "enum"}
        items = prop.get("items") if isinstance(prop, dict) else None
        if isinstance(items, dict) and isinstance(items.get("enum"), list):
            found[key] = items["enum"]
            prop = {**prop, "items": {k: v for k, v in items.items() if k != "enum"}}
        kept[key] = prop
    return {**params, "properties": kept}, found


def parameters(fn: dict[str, Any]) -> dict[str, Any]:
    params = fn.get("parameters")
    return params if isinstance(params, dict) and params else {"type": "object", "properties": {}}


def call_text(name: str, arguments: Any) -> str:
    """A tool call as the model writes it. Arguments given as the JSON text of an object are embedded as written
    (the handler returns a forced call's arguments as the model generated them, after `call_prefix`), so the
    call reads back as the tokens the server evaluated and its cached state stays a prefix of the next step's
    prompt; other arguments are embedded as the JSON value they are."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            parsed = arguments  # kept as a string: the model sees what it wrote
        if isinstance(parsed, dict) and arguments.strip() and "\n" not in arguments.strip():  # one line, as written
            return f"{call_prefix(name)[:-1]}{arguments.strip()}}}{CALL_CLOSE}"
        arguments = parsed
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}{body}{CALL_CLOSE}"


def call_prefix(name: str) -> str:
    """What a forced call of `name` starts with, up to the arguments' opening brace; the grammar of its schema
    (model/llama_server.py) goes on with a space, then the properties. The tokenizer reads `{ "` as the two
    tokens ` {` and ` "` wherever it meets them, so the call, read back in the next step's prompt, tokenizes as
    it was generated (SmolLM2 writes `{"` as a single token after a space when it has the choice)."""
    return f'{CALL_OPEN}{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {{'


def render_message(message: dict[str, Any], tools_section: str | None, choices: str | None = None) -> str:
    role = str(message.get("role", "user"))
    text = text_of(message.get("content"))
    if role == "system" and tools_section:
        text = f"{tools_section}\n\n{text}" if text else tools_section
    if role == "system" and choices:
        text = f"{text}\n\n{choices}" if text else choices
    if role == "assistant":
        calls = [
            call_text(str(fn.get("name", "")), fn.get("arguments", {}))
            for call in message.get("tool_calls") or []
            if isinstance(fn := call.get("function"), dict)
        ]
        text = "\n".join([t for t in (text, *calls) if t])
    return f"{START}{role}\n{text}{END}\n"


def render_prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, forced: str | None = None) -> str:
    """The whole prompt, ending where the assistant's answer (or the forced call's arguments) begins.

    The tools open the first system message (one is added in front if there is none), even when tool_choice
    is "none": the prompt then differs from the previous step only at its end. The values their arguments
    take close the last of the system messages that open the request.
    """
    section, choices = describe_tools(tools) if tools else (None, None)
    messages = memory_first(messages)
    parts: list[str] = []
    if section and not (messages and messages[0].get("role") == "system"):
        parts.append(render_message({"role": "system", "content": ""}, section, choices))
        section = choices = None
    lead = leading_systems(messages)
    for i, message in enumerate(messages):
        parts.append(render_message(message, section if i == 0 else None, choices if i == lead - 1 else None))
    parts.append(f"{START}assistant\n")
    if forced is not None:
        parts.append(call_prefix(forced))
    return "".join(parts)


def memory_first(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's opening system messages with the memory (the engine's `<memory_blocks>` message, sent
    after the agent's prompt as in Letta) moved in front of the agent's prompt. Only this chat format does
    so: the agents holding the same shared blocks (which the memory lists first) then share that prefix too,
    so an agent's first call evaluates its own prompt and not the team's memory again. Other endpoints get
    Letta's order as sent."""
    memory = (
        i for i in range(leading_systems(messages)) if text_of(messages[i].get("content")).startswith("<memory_blocks>")
    )
    i = next(memory, 0)
    return [messages[i], *messages[:i], *messages[i + 1 :]] if i else messages


def leading_systems(messages: list[dict[str, Any]]) -> int:
    """How many system messages open the request."""
    return next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))


def parse_call(text: str, names: set[str]) -> tuple[str, dict[str, Any] | None, str | None]:
    """Split a free answer into (text before the call, the call's arguments, the call's name).

    The name is None if there is no call or it names no known tool; the arguments are None if they
    could not be read (the caller may then ask again with the name forced).
    """
    head, sep, rest = text.partition(CALL_OPEN)
    if not sep:
        return text, None, None
    body = rest.split(CALL_CLOSE, 1)[0].strip()
    try:
        data, _ = json.JSONDecoder().raw_decode(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("name"), str):
        name = data["name"]
        args = data.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = None
        return head.strip(), args if isinstance(args, dict) else None, name if name in names else None
    named = [n for n in names if f'"{n}"' in body]
    return head.strip(), None, named[0] if len(named) == 1 else None


def request_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message: the request a forced call answers."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _names(value: str, text: str) -> bool:
    """`value` appears in `text` as a whole name (not inside a longer word or id: worker-2 is not in worker-21)."""
    return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text) is not None


def bind_named_choices(schema: dict[str, Any], request: str) -> dict[str, Any]:
    """The schema of a forced call's arguments with each choice (a string `enum`) that the request names
    exactly one value of bound to that value: "Ask worker-2 ..." sends to worker-2, whoever else the small
    model's history is full of. A request naming none or several of the values leaves the choice to the model."""
    props = schema.get("properties")
    if not isinstance(props, dict) or not request:
        return schema
    bound = dict(props)
    for key, prop in props.items():
        values = prop.get("enum") if isinstance(prop, dict) else None
        if not isinstance(values, list) or len(values) < 2:
            continue
        named = [v for v in values if isinstance(v, str) and v and _names(v, request)]
        if len(named) == 1:
            bound[key] = {**prop, "enum": named}
    return {**schema, "properties": bound}


def fits(args: dict[str, Any], schema: dict[str, Any]) -> bool:
    """The arguments name only the schema's properties and every required one (the values are the tool's to
    check). SmolLM2 writes calls with made-up keys (`"sentence"` for `"message"`) and repeats them step after step."""
    props = schema.get("properties")
    if isinstance(props, dict) and props and any(key not in props for key in args):
        return False
    return all(key in args for key in schema.get("required") or [])


def before_stop(text: str) -> str:
    """An answer cut at a stop, without what opened the stopped part (the `[` of a bare JSON call list)."""
    return text.rstrip().rstrip("[").rstrip()


def whole_sentences(text: str) -> str:
    """A reply cut off by the token limit, trimmed back to its last whole sentence, else its last whole line
    (if it has either)."""
    stripped = text.rstrip()
    if not stripped or stripped[-1] in SENTENCE_ENDS:
        return stripped
    cut = max(stripped.rfind(f"{c} ") for c in SENTENCE_ENDS)
    cut = max(cut, *(stripped.rfind(f"{c}\n") for c in SENTENCE_ENDS))
    if cut > 0:
        return stripped[: cut + 1]
    line = stripped.rfind("\n")
    return stripped[:line].rstrip() if line > 0 else stripped
