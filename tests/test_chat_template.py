"""The local model's prompt (model/chat_template.py): ChatML as plain text, tools in the first system message,
nothing escaped, and the one-line tool calls read back."""

from __future__ import annotations

import json

from letta_cli.model import chat_template as ct

TOOL = {
    "type": "function",
    "function": {
        "name": "core_memory_append",
        "description": 'Append to a block; "label" names it',
        "parameters": {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]},
    },
}
MESSAGES = [
    {"role": "system", "content": '<memory_blocks>\n<block label="team">x < y & "z"</block>\n</memory_blocks>'},
    {"role": "system", "content": 'You are agent "a".'},
    {"role": "user", "content": "Note <this>."},
]


def test_the_prompt_is_chatml_with_nothing_escaped():
    prompt = ct.render_prompt(MESSAGES, [TOOL])
    assert prompt.startswith("<|im_start|>system\n# Tools\n") and "}\n\n<memory_blocks>" in prompt
    assert '<block label="team">x < y & "z"</block>' in prompt and "<|im_start|>user\nNote <this>.<|im_end|>" in prompt
    assert "&lt;" not in prompt and "&#34;" not in prompt and "&amp;" not in prompt and "&quot;" not in prompt
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.count("<|im_start|>system") == 2 and prompt.count("# Tools") == 1


def to_agent(name: str, others: list[str]) -> dict:
    """A messaging tool as narrowed for one agent: the agent ids to choose from exclude the caller."""
    agent_id = {"type": "string", "enum": others, "description": "The other agent's id."}
    params = {"type": "object", "properties": {"other_agent_id": agent_id}, "required": ["other_agent_id"]}
    return {"type": "function", "function": {"name": name, "description": "Message one.", "parameters": params}}


def test_the_tools_are_the_same_text_for_every_agent_and_their_choices_come_after_the_system_messages():
    own = {"role": "system", "content": 'You are agent "a".'}
    prompt = ct.render_prompt([MESSAGES[0], own, MESSAGES[2]], [to_agent("send_x", ["b", "c"]), TOOL])
    other = ct.render_prompt(
        [MESSAGES[0], {"role": "system", "content": 'You are agent "b".'}, MESSAGES[2]],
        [TOOL, to_agent("send_x", ["a", "c"])],  # the same tools in another order
    )
    shared = shared_prefix(prompt, other)
    assert shared.endswith('You are agent "') and "<memory_blocks>" in shared  # tools, memory: one prefix
    assert shared.index('{"name":"core_memory_append"') < shared.index('{"name":"send_x"')  # by name
    assert '"enum"' not in prompt and '"other_agent_id":{"type":"string","description":' in shared
    choices = """The values the tools' arguments take: {"other_agent_id":["b","c"]}"""
    assert prompt.endswith(f'You are agent "a".\n\n{choices}<|im_end|>\n<|im_start|>user\nNote <this>.<|im_end|>\n'
                           "<|im_start|>assistant\n")  # fmt: skip
    schema = json.loads(prompt[prompt.index('{"name":"core_memory_append"') :].split("\n", 1)[0])
    assert schema["parameters"]["required"] == ["label"] and schema["description"].endswith('"label" names it')
    # one property with different choices in two tools is said per tool; with no system message, one is added
    alone = ct.render_prompt([MESSAGES[2]], [to_agent("send_x", ["b"]), to_agent("send_y", ["c"])])
    assert '{"other_agent_id":["b"],"send_y.other_agent_id":["c"]}<|im_end|>\n<|im_start|>user' in alone


def test_the_memory_is_read_first_by_this_format_only():
    """The engine sends Letta's order (the agent's prompt, then its memory); the local format reads the memory
    first, so two agents holding the same shared block share it as a prefix."""

    def request(prompt: str) -> list[dict]:
        memory = (
            '<memory_blocks>\n<block label="team" shared="true">\n<value>\nGoal\n</value>\n</block>\n</memory_blocks>'
        )
        return [
            {"role": "system", "content": prompt},
            {"role": "system", "content": memory},
            {"role": "user", "content": "hi"},
        ]

    a, c = ct.render_prompt(request("You are Alice."), None), ct.render_prompt(request("You are Carol."), None)
    assert a.index("<memory_blocks>") < a.index("You are Alice.") < a.index("hi")
    n = next(i for i, (x, y) in enumerate(zip(a, c, strict=False)) if x != y)
    assert "</memory_blocks>" in a[:n]
    plain = [{"role": "system", "content": "You are Alice."}, {"role": "user", "content": "<memory_blocks> quoted"}]
    assert ct.render_prompt(plain, None).index("You are Alice.") < ct.render_prompt(plain, None).index("quoted")


def test_the_same_messages_give_the_same_prefix_whatever_the_tool_choice():
    free = ct.render_prompt(MESSAGES, [TOOL])
    forced = ct.render_prompt(MESSAGES, [TOOL], forced="core_memory_append")
    assert forced.startswith(free) and forced.endswith('<tool_call>{"name": "core_memory_append", "arguments": {')
    assert ct.render_prompt(MESSAGES, None).count("# Tools") == 0


def test_a_prompt_without_a_system_message_gets_one_for_the_tools():
    prompt = ct.render_prompt([{"role": "user", "content": "hi"}], [TOOL])
    assert prompt.startswith("<|im_start|>system\n# Tools\n") and "<|im_start|>user\nhi<|im_end|>" in prompt


def test_past_tool_calls_and_results_are_rendered_as_the_model_writes_them():
    history = [
        {"role": "user", "content": "remember"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": "<1>"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": [{"type": "text", "text": "and "}, {"type": "text", "text": "now?"}]},
    ]
    prompt = ct.render_prompt(history, None)
    assert '<|im_start|>assistant\n<tool_call>{"name": "f", "arguments": {"a": "<1>"}}</tool_call><|im_end|>' in prompt
    assert "<|im_start|>tool\ndone<|im_end|>" in prompt and "<|im_start|>user\nand now?<|im_end|>" in prompt


def test_a_call_in_a_free_answer_is_read_back():
    names = {"f", "g"}
    assert ct.parse_call('Sure. <tool_call>{"name": "f", "arguments": {"x": 1}}', names) == ("Sure.", {"x": 1}, "f")
    assert ct.parse_call('<tool_call>{"name": "f", "arguments": "{\\"x\\": 2}"}', names) == ("", {"x": 2}, "f")
    assert ct.parse_call("no call here", names) == ("no call here", None, None)
    assert ct.parse_call('<tool_call>{"name": "h", "arguments": {}}', names)[2] is None  # unknown tool
    assert ct.parse_call('<tool_call>{"name": "g", "arguments": {"x": ', names) == ("", None, "g")  # cut: force g


def test_a_cut_reply_is_trimmed_to_its_last_whole_sentence():
    assert ct.whole_sentences("I bring cake. Also some lemonade and") == "I bring cake."
    assert ct.whole_sentences("Done!  ") == "Done!"
    assert ct.whole_sentences("no sentence end at all") == "no sentence end at all"
    assert ct.whole_sentences("A list:\n* one\n* tw") == "A list:\n* one"  # else the last whole line
    assert ct.whole_sentences("Is it 3.5 or") == "Is it 3.5 or"  # a decimal point is not a sentence end


def shared_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


class ScriptedLlama:
    """Stands in for llama_cpp.Llama in the handler: answers each completion from a script, and evaluates
    (through `eval`, as Llama.generate does) the prompt's tokens after the prefix it saw last."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.stops: list[list[str]] = []
        self.seen = ""
        self.finish = "stop"

    def eval(self, tokens):
        return None

    def create_completion(self, *, prompt, stop, **_):
        self.prompts.append(prompt)
        self.stops.append(stop)
        shared = len(shared_prefix(self.seen, prompt))
        self.eval(list(prompt[shared:]))  # one "token" per character
        self.seen = prompt
        text = self.answers.pop(0)
        usage = {"prompt_tokens": len(prompt), "completion_tokens": len(text.split())}
        return {"choices": [{"text": text, "finish_reason": self.finish}], "usage": usage}


def test_the_handler_turns_a_call_in_a_free_answer_into_a_tool_call():
    from letta_cli.model.llama_server import letta_chatml

    llama = ScriptedLlama('<tool_call>{"name": "core_memory_append", "arguments": {"label": "team"}}')
    out = letta_chatml(llama=llama, messages=MESSAGES, tools=[TOOL], tool_choice="auto")
    (call,) = out["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "core_memory_append", "arguments": '{"label": "team"}'}
    assert out["choices"][0]["finish_reason"] == "tool_calls" and "</tool_call>" in llama.stops[0]
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


def test_the_handler_answers_in_text_for_tool_choice_none_and_reports_the_cached_prefix():
    from letta_cli.model.llama_server import letta_chatml

    llama = ScriptedLlama("First.", "I bring cake. And")
    llama.finish = "length"
    letta_chatml(llama=llama, messages=MESSAGES, tools=[TOOL], tool_choice="none")
    again = [*MESSAGES, {"role": "user", "content": "More?"}]
    out = letta_chatml(llama=llama, messages=again, tools=[TOOL], tool_choice="none")
    message = out["choices"][0]["message"]
    assert message["content"] == "I bring cake." and "tool_calls" not in message
    assert "<tool_call>" in llama.stops[1] and "# Tools" in llama.prompts[1]  # tools stay in the prompt
    usage = out["usage"]
    shared = len(shared_prefix(*llama.prompts))
    assert shared > len(llama.prompts[0]) - 30  # only the end differs: the new message
    assert usage["prompt_tokens_details"]["cached_tokens"] == shared


def test_a_forced_call_reads_back_in_the_next_prompt_as_it_was_generated():
    """The arguments are returned as generated, spaces and all, and the next step renders them so: its prompt
    starts with the forced prompt and the generated text, which the server has evaluated already."""
    from letta_cli.model.llama_server import letta_chatml

    llama = ScriptedLlama(' "label" : "team"}', "Noted.")
    forced = {"type": "function", "function": {"name": "core_memory_append"}}
    out = letta_chatml(llama=llama, messages=MESSAGES, tools=[TOOL], tool_choice=forced)
    (call,) = out["choices"][0]["message"]["tool_calls"]
    assert call["function"]["arguments"] == '{ "label" : "team"}'
    step = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Appended."},
    ]
    letta_chatml(llama=llama, messages=step, tools=[TOOL], tool_choice="none")
    assert llama.prompts[1].startswith(llama.prompts[0] + ' "label" : "team"}}</tool_call>')
    # arguments from elsewhere (another server, a hand-written history) are rendered as JSON
    assert ct.call_text("f", '{"a":1}') == '<tool_call>{"name": "f", "arguments": {"a":1}}</tool_call>'
    assert ct.call_text("f", "not json") == '<tool_call>{"name": "f", "arguments": "not json"}</tool_call>'
    assert ct.call_text("f", '{\n  "a": 1\n}') == '<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'


def test_the_handler_refuses_to_force_an_unknown_tool():
    import pytest

    from letta_cli.model.llama_server import letta_chatml

    with pytest.raises(ValueError, match="tool_choice names 'nope'"):
        letta_chatml(llama=ScriptedLlama(), messages=MESSAGES, tools=[TOOL], tool_choice={"function": {"name": "nope"}})


def test_a_forced_call_binds_the_one_choice_the_request_names():
    schema = {
        "type": "object",
        "properties": {
            "other_agent_id": {"type": "string", "enum": ["supervisor", "worker-2", "worker-21"]},
            "message": {"type": "string"},
        },
    }
    messages = [*MESSAGES[:2], {"role": "user", "content": "Ask worker-2 what they bring."}]
    bound = ct.bind_named_choices(schema, ct.request_text(messages))
    assert bound["properties"]["other_agent_id"]["enum"] == ["worker-2"]
    assert (
        bound["properties"]["message"] == {"type": "string"}
        and schema["properties"]["other_agent_id"]["enum"][0] == "supervisor"
    )
    # none named, two named, or only inside a longer id: the model chooses among them all
    for request in ("Ask someone.", "Ask worker-2 and the supervisor.", "Ask worker-21x or worker-2x."):
        assert ct.bind_named_choices(schema, request) == schema
    assert ct.bind_named_choices(schema, "Ask worker-21.")["properties"]["other_agent_id"]["enum"] == ["worker-21"]
    assert ct.request_text([{"role": "system", "content": "worker-2"}]) == ""


def test_an_answer_ends_where_it_copies_the_memory_markup_and_an_empty_one_is_asked_again():
    """SmolLM2 copies the prompt's `<block label=...>` into replies: the server stops there; an answer with
    nothing before it (`<block_label> ...`) is asked again for text."""
    from letta_cli.model.llama_server import letta_chatml

    llama = ScriptedLlama("", "I bring cake.")
    out = letta_chatml(llama=llama, messages=MESSAGES, tools=[TOOL], tool_choice="auto")
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "I bring cake."}
    assert all("<block" in stops and "<memory_blocks" in stops for stops in llama.stops)
    assert llama.prompts[0] == llama.prompts[1]  # the same prompt: nothing evaluated twice


def test_a_free_call_whose_arguments_do_not_fit_the_schema_is_generated_again_under_it():
    from letta_cli.model.llama_server import letta_chatml

    assert ct.fits({"label": "team"}, TOOL["function"]["parameters"])
    assert not ct.fits({"sentence": "b"}, TOOL["function"]["parameters"])  # unknown key, required one missing
    assert not ct.fits({}, TOOL["function"]["parameters"])

    class Bound(ScriptedLlama):
        def create_completion(self, *, grammar=None, **kw):
            self.grammars = [*getattr(self, "grammars", []), grammar]
            return super().create_completion(**kw)

    llama = Bound('<tool_call>{"name": "core_memory_append", "arguments": {"sentence": "b"}}', ' "label": "team"}')
    out = letta_chatml(llama=llama, messages=MESSAGES, tools=[TOOL], tool_choice="auto")
    (call,) = out["choices"][0]["message"]["tool_calls"]
    assert call["function"]["arguments"] == '{ "label": "team"}' and llama.grammars[0] is None
    assert llama.grammars[1] is not None and llama.prompts[1].endswith('"arguments": {')


def test_a_call_written_as_bare_json_where_text_is_asked_for_is_asked_again():
    from letta_cli.model.llama_server import letta_chatml

    class Tokens(ScriptedLlama):
        def tokenize(self, data, add_bos=False):
            return [ord(data.decode()[-1])]

        def create_completion(self, *, logit_bias=None, **kw):
            self.biases = [*getattr(self, "biases", []), logit_bias]
            return super().create_completion(**kw)

    llama = Tokens("[", "They bring cake.")  # stopped at '{"name":' after the '['
    out = letta_chatml(llama=llama, messages=MESSAGES, tools=[TOOL], tool_choice="none")
    assert out["choices"][0]["message"]["content"] == "They bring cake."
    assert '{"name":' in llama.stops[0] and llama.biases[0] is None
    assert {ord("<"), ord("{"), ord("[")} <= set(llama.biases[1])
