"""The embedded local model: the real llama.cpp server and SmolLM2 weights, through the real openai SDK.

Tests that need the model skip only when llama-cpp-python is not installed (`scripts/setup.sh`);
the error paths run everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from letta_cli.core.errors import StorageError
from letta_cli.model import chat_template, llama_command, llama_server
from letta_cli.model import local as localmodel
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI, REPO, base_env

FORCED_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"}},
            "required": ["city"],
        },
    },
}


def needs_model() -> None:
    pytest.importorskip("llama_cpp", reason="the local-model extra is not installed")


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One real model server for the module, started through the library."""
    needs_model()
    ws = Workspace(tmp_path_factory.mktemp("local") / "ws")
    (ws.root / "agents.d").mkdir(parents=True)
    info = localmodel.serve(ws)
    yield ws, info
    localmodel.stop(ws)


@pytest.fixture
def fresh(tmp_path, ws):
    """A workspace of its own for a test that starts a server; the server is stopped however the test ends."""
    needs_model()
    yield Workspace(ws)
    localmodel.stop(Workspace(ws))


@pytest.fixture
def client(served):
    import openai

    _, info = served
    return openai.OpenAI(base_url=info.base_url, api_key="local", max_retries=0, timeout=60)


# --- the real model --------------------------------------------------------------------------------------


def test_serve_records_a_ready_server(served):
    ws, info = served
    assert info.ready and info.base_url == f"http://127.0.0.1:{info.port}/v1"
    record = json.loads(localmodel.record_path(ws).read_text())
    assert record["pid"] == info.pid and record["version"] == 1 and record["model"] == info.model
    assert Path(record["gguf"]).is_file() and "ready" not in record
    assert record["model"] == "SmolLM2-135M-Instruct.Q8_0" and record["gguf"].endswith(
        "/SmolLM2-135M-Instruct.Q8_0.gguf"
    )
    assert localmodel.status(ws).ready
    assert localmodel.ensure_server(ws) == (info.base_url, info.model)


def test_a_second_serve_reuses_the_running_server(served):
    ws, info = served
    assert localmodel.serve(ws).pid == info.pid


def test_plain_completion(client, served):
    _, info = served
    response = client.chat.completions.create(
        model=info.model,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hi."},
        ],
        max_tokens=24,
    )
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


def test_a_request_without_max_tokens_is_cut_at_the_servers_default(client, served):
    _, info = served
    response = client.chat.completions.create(
        model=info.model,
        messages=[{"role": "user", "content": "Count from 1 to 1000, one number per line, and do not stop."}],
        temperature=0,
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens <= llama_server.DEFAULT_MAX_TOKENS == 128


def test_forced_tool_call_has_json_arguments(client, served):
    _, info = served
    response = client.chat.completions.create(
        model=info.model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[FORCED_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=64,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    arguments = json.loads(call.function.arguments)  # the server constrains them to the schema
    assert isinstance(arguments["city"], str)


def test_tool_result_round_trip(client, served):
    """A tool call and its result sent back: the assistant message needs content "" (None is rejected)."""
    _, info = served
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    response = client.chat.completions.create(model=info.model, messages=messages, max_tokens=32)
    assert response.choices[0].finish_reason in ("stop", "length")


def test_the_model_reads_the_prompt_unescaped(client, served):
    """The server renders exactly chat_template.render_prompt: `<` and `"` reach the model as written (the
    token count of our own rendering matches what the server evaluated; an escaping template adds tokens)."""
    _, info = served
    messages = [
        {"role": "system", "content": 'You are "scribe".\n<memory_blocks>\n<block label="notes">milk</block>'},
        {"role": "user", "content": 'Reply with <b>"ok"</b> & nothing else.'},
    ]
    response = client.chat.completions.create(
        model=info.model, messages=messages, tools=[FORCED_TOOL], tool_choice="none", max_tokens=8
    )
    prompt = chat_template.render_prompt(messages, [FORCED_TOOL])
    assert '<block label="notes">' in prompt and "&lt;" not in prompt and "&#34;" not in prompt
    root = info.base_url.removesuffix("/v1")
    request = urllib.request.Request(
        f"{root}/extras/tokenize/count",
        data=json.dumps({"input": prompt, "model": info.model}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as counted:
        assert response.usage.prompt_tokens == json.load(counted)["count"]


def test_the_threads_are_fitted_to_the_free_cpus_and_the_log_says_so(client, served):
    ws, info = served
    client.chat.completions.create(model=info.model, messages=[{"role": "user", "content": "Hi."}], max_tokens=2)
    lines = [line for line in localmodel.log_tail(ws, 400).splitlines() if "thread(s) from now on" in line]
    cpus = len(os.sched_getaffinity(0))
    if os.environ.get(llama_command.THREADS_ENV):
        assert lines == []  # a fixed setting is kept to
        return
    assert lines, "the first completion sets the threads"
    threads = int(lines[-1].split("letta-cli: ", 1)[1].split()[0])
    assert 1 <= threads <= min(cpus, llama_command.MOST_THREADS)


def test_a_repeated_prefix_is_reported_as_cached(client, served):
    _, info = served
    system = {"role": "system", "content": "You are a terse assistant. " * 20}
    first = client.chat.completions.create(
        model=info.model, messages=[system, {"role": "user", "content": "Say hi."}], max_tokens=4
    )
    second = client.chat.completions.create(
        model=info.model, messages=[system, {"role": "user", "content": "Say bye."}], max_tokens=4
    )
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens > 100 and cached >= first.usage.prompt_tokens - 12
    assert cached < second.usage.prompt_tokens  # the new last message was evaluated


def test_a_forced_call_read_back_in_the_next_step_is_served_from_the_cache(client, served):
    """The next step's prompt carries the call as the model generated it, so the server re-evaluates only the
    call's last tokens and what follows (the tool result), not the arguments."""
    _, info = served
    messages = [{"role": "user", "content": "What is the weather in Paris? " * 8}]
    forced = {"type": "function", "function": {"name": "get_weather"}}
    # greedy: sampled, the model may write a city like `}, de`, which reads back in other tokens than it wrote
    first = client.chat.completions.create(
        model=info.model, messages=messages, tools=[FORCED_TOOL], tool_choice=forced, max_tokens=64, temperature=0
    )
    (call,) = first.choices[0].message.tool_calls
    step = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }
    messages += [
        {"role": "assistant", "content": "", "tool_calls": [step]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    second = client.chat.completions.create(
        model=info.model, messages=messages, tools=[FORCED_TOOL], tool_choice="none", max_tokens=8
    )
    cached = second.usage.prompt_tokens_details.cached_tokens
    generated = first.usage.completion_tokens
    assert cached >= first.usage.prompt_tokens + generated - 4, (cached, first.usage, call.function.arguments)


def test_tool_choice_none_answers_in_text(client, served):
    _, info = served
    response = client.chat.completions.create(
        model=info.model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[FORCED_TOOL],
        tool_choice="none",
        max_tokens=24,
    )
    choice = response.choices[0]
    assert not choice.message.tool_calls and choice.message.content and "<tool_call>" not in choice.message.content


def test_cli_status_sees_the_servers_of_the_workspace(served, tmp_path):
    ws, info = served
    cli = CLI(ws.root, base_env(tmp_path))
    status = cli.ok("model", "status", "--json").json()
    assert status["running"] and status["ready"] and status["pid"] == info.pid
    assert status["base_url"] == info.base_url and status["log"] == str(localmodel.log_path(ws))
    assert cli.ok("model", "serve", "--json").json()["pid"] == info.pid
    assert cli.ok("model", "serve").out.strip() == info.base_url
    assert cli.ok("model", "status").out.startswith("ready: ")


def test_cli_serve_status_stop(tmp_path, ws, fresh):
    cli = CLI(ws, base_env(tmp_path))
    assert cli.ok("model", "status", "--json").json() == {
        "running": False,
        "ready": False,
        "log": str(ws / ".agents" / "model-server.log"),
    }
    started = cli.ok("model", "serve", "--json").json()
    assert started["running"] and started["ready"]
    pid = started["pid"]
    assert not gone(pid)
    assert cli.ok("model", "stop", "--json").json() == {"stopped": True}
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:  # reparented: init reaps it
        time.sleep(0.05)
    assert gone(pid)
    assert not (ws / ".agents" / "model-server.json").exists()
    assert cli.ok("model", "stop").out.strip() == "not running"
    assert cli.ok("model", "status", "--json").json()["running"] is False


def test_two_shells_starting_at_once_get_one_server(tmp_path, ws, fresh):
    cli = CLI(ws, base_env(tmp_path))
    procs = [cli.popen("model", "serve", "--json", stdout=subprocess.PIPE) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert outs[0]["pid"] == outs[1]["pid"] and outs[0]["ready"] and outs[1]["ready"]
    assert cli.ok("model", "stop", "--json").json() == {"stopped": True}


def test_a_server_whose_workspace_is_deleted_stops_by_itself(tmp_path):
    """`rm -rf` of a workspace, with no `agents model stop`: the server exits on its own."""
    needs_model()
    import shutil

    ws = Workspace(tmp_path / "doomed")
    (ws.root / "agents.d").mkdir(parents=True)
    info = localmodel.serve(ws)
    child = localmodel._children[info.pid]
    try:
        shutil.rmtree(ws.root)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_library_stop_kills_the_process_and_removes_the_record(fresh):
    ws = fresh
    info = localmodel.serve(ws)
    assert localmodel.stop(ws) is True
    assert gone(info.pid) and not localmodel.record_path(ws).exists()
    assert localmodel.status(ws) is None and localmodel.stop(ws) is False


def test_a_server_killed_behind_our_back_is_forgotten(fresh):
    ws = fresh
    info = localmodel.serve(ws)
    os.kill(info.pid, 9)
    deadline = time.monotonic() + 5
    while localmodel.status(ws) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert localmodel.status(ws) is None and not localmodel.record_path(ws).exists()


def test_a_server_that_dies_at_start_is_reported_with_its_log(tmp_path, ws, fresh):
    cli = CLI(ws, {**base_env(tmp_path), "LETTA_CLI_MODEL_ARGS": "--n_ctx lots"})
    res = cli("model", "serve")
    assert res.code == 7
    assert "exited with code 2 while starting" in res.err and "invalid int value: 'lots'" in res.err
    assert not (ws / ".agents" / "model-server.json").exists()


# --- without the model -----------------------------------------------------------------------------------


def test_gguf_override_to_a_missing_file_says_so(tmp_path, ws):
    missing = tmp_path / "nope.gguf"
    cli = CLI(ws, {**base_env(tmp_path), "LETTA_CLI_GGUF": str(missing)})
    for command in (("model", "path"), ("model", "serve")):
        res = cli(*command)
        assert res.code == 7, res.err
        assert res.err.strip() == f"agents: error: LETTA_CLI_GGUF is set to {missing}, which is not a file"
    assert not (ws / ".agents" / "model-server.json").exists()


def test_gguf_override_is_used(tmp_path, ws):
    weights = tmp_path / "other.gguf"
    weights.write_bytes(b"GGUF")
    cli = CLI(ws, {**base_env(tmp_path), "LETTA_CLI_GGUF": str(weights)})
    assert cli.ok("model", "path").out.strip() == str(weights)
    data = cli.ok("model", "path", "--json").json()
    assert data["gguf"] == data["served"] == str(weights)  # served as it is, not copied


def test_without_llama_cpp_serve_says_what_to_install(tmp_path, ws):
    """A llama_cpp package without the server shadows the real one: serve explains how to install it."""
    shadow = tmp_path / "shadow" / "llama_cpp"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF")
    env = {**base_env(tmp_path), "LETTA_CLI_GGUF": str(weights)}
    env["PYTHONPATH"] = f"{shadow.parent}{os.pathsep}{env['PYTHONPATH']}"
    cli = CLI(ws, env)
    res = cli("model", "serve")
    assert res.code == 7
    assert "not installed (llama-cpp-python has no server module)" in res.err
    assert "pip install 'letta-cli[local]'" in res.err and "-DGGML_NATIVE=OFF" in res.err
    assert "local model not installed" in cli.ok("model", "status").out


def test_a_log_planted_as_a_symlink_is_one_clear_error_and_never_followed(tmp_path, ws):
    """.agents/model-server.log as a symbolic link (a cloned .agents/): starting the server says so in one
    line (exit 8, storage) and writes nothing through it; the log's tail, quoted in errors, is not read
    through it either."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    state = ws / ".agents"
    state.mkdir()
    (state / "model-server.log").symlink_to(victim)
    workspace = Workspace(ws)
    assert localmodel.log_tail(workspace) == ""
    with pytest.raises(StorageError, match=r"model-server\.log is a symbolic link; state files are never written"):
        localmodel._spawn(workspace, Path("/m/x.gguf"), 1, detached=True)
    assert victim.read_text() == "precious\n" and not localmodel.record_path(workspace).exists()


def test_cli_serve_with_a_planted_log_symlink_says_so_in_one_line(tmp_path, ws):
    needs_model()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF")
    (ws / ".agents").mkdir()
    (ws / ".agents" / "model-server.log").symlink_to(victim)
    res = CLI(ws, {**base_env(tmp_path), "LETTA_CLI_GGUF": str(weights)})("model", "serve")
    assert res.code == 8, res.err
    assert res.err.strip().splitlines() == [
        f"agents: error: {ws.resolve()}/.agents/model-server.log is a symbolic link; "
        "state files are never written through one"
    ]
    assert victim.read_text() == "precious\n" and not (ws / ".agents" / "model-server.json").exists()


def test_a_stale_record_is_removed(tmp_path):
    ws = Workspace(tmp_path / "ws")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    localmodel._write_record(
        ws, localmodel.ServerInfo(pid=dead.pid, port=1, base_url="http://127.0.0.1:1/v1", model="m", gguf="/x.gguf")
    )
    assert localmodel.status(ws) is None
    assert not localmodel.record_path(ws).exists()
    assert localmodel.stop(ws) is False


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to tell programs apart")
def test_a_record_naming_another_program_is_not_signalled(tmp_path):
    """A reused pid (here: this test's own process) is never taken for the server, nor killed."""
    ws = Workspace(tmp_path / "ws")
    localmodel._write_record(
        ws, localmodel.ServerInfo(pid=os.getpid(), port=1, base_url="http://127.0.0.1:1/v1", model="m", gguf="/x.gguf")
    )
    assert localmodel.status(ws) is None
    assert localmodel.stop(ws) is False  # and we are still here


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to tell programs apart")
def test_the_launcher_is_recognised_as_the_server(tmp_path):
    """A record naming a process that runs our launcher is taken for the server (and stopped)."""
    ws = Workspace(tmp_path / "ws")
    code = "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "-m", localmodel.LAUNCHER])
    try:
        localmodel._write_record(
            ws, localmodel.ServerInfo(pid=proc.pid, port=1, base_url="http://127.0.0.1:1/v1", model="m", gguf="/x")
        )
        assert localmodel.status(ws) is not None
        assert localmodel.stop(ws) is True and proc.wait(timeout=10) != 0
    finally:
        proc.kill()
        proc.wait()


def test_threads_follow_the_setting_and_the_machine(monkeypatch):
    monkeypatch.setenv(llama_command.THREADS_ENV, "3")
    assert llama_command.threads() == (3, False)
    command = llama_command.server_command(Path("/m/x.gguf"), 1234)
    assert command[1:3] == ["-m", llama_command.LAUNCHER] and command[command.index("--n_threads") + 1] == "3"
    assert "--threads_free" not in command  # a setting is kept to
    assert command[command.index("--chat_format") + 1] == "letta-chatml"
    assert command[command.index("--cache") + 1] == "True"
    monkeypatch.setenv(llama_command.THREADS_ENV, "many")
    with pytest.raises(llama_command.LocalModelError, match="LETTA_CLI_MODEL_THREADS must be a whole number"):
        llama_command.threads()
    monkeypatch.delenv(llama_command.THREADS_ENV)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})
    assert llama_command.threads() == (2, True)  # the model takes those of the 2 that are free
    command = llama_command.server_command(Path("/m/x.gguf"), 1234, Path("/w/.agents"))
    assert command[command.index("--threads_free") + 1] == "2" == command[command.index("--n_threads") + 1]
    assert command[command.index("--exit_without") + 1] == "/w/.agents"
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)))
    assert llama_command.threads() == (4, True)


def test_the_packaged_weights_are_served_as_their_q8_copy_and_an_override_as_it_is(monkeypatch, tmp_path):
    source = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    source.write_bytes(b"GGUF")
    monkeypatch.delenv("LETTA_CLI_GGUF", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    command = llama_command.server_command(source, 1234)
    served = Path(command[command.index("--model") + 1])
    assert served.name == "SmolLM2-135M-Instruct.Q8_0.gguf" and served.is_relative_to(tmp_path / "cache" / "letta-cli")
    assert command[command.index("--weights_from") + 1] == str(source)
    assert command[command.index("--model_alias") + 1] == "SmolLM2-135M-Instruct.Q8_0"

    source.write_bytes(b"GGUF, a newer release")  # another source: another copy, never a stale one
    assert Path(llama_command.served_weights(source)[0]) != served

    monkeypatch.setenv("LETTA_CLI_GGUF", str(source))
    assert llama_command.served_weights(source) == (source, [])
    monkeypatch.delenv("LETTA_CLI_GGUF")
    assert llama_command.served_weights(tmp_path / "own.Q5_K.gguf") == (tmp_path / "own.Q5_K.gguf", [])
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "")
    assert llama_command.served_weights(source) == (source, [])  # no cache to put a copy in


def test_the_launcher_makes_the_copy_once_and_serves_it(tmp_path):
    """The real conversion: a Q8_0 file that llama.cpp loads, written under its name only when whole."""
    needs_model()
    from llama_cpp import Llama

    from letta_cli.model.local_setup import gguf_path

    source = gguf_path()
    target = tmp_path / "cache" / "SmolLM2-135M-Instruct.Q8_0.gguf"
    argv = ["launcher", "--model", str(target), "--weights_from", str(source), "--threads_free", "2", "--port", "1"]
    args, ours = llama_server.our_flags([*argv, "--exit_without", str(tmp_path)])
    assert args == ["launcher", "--model", str(target), "--port", "1"]
    assert ours.threads_free == 2 and ours.exit_without == str(tmp_path)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no partial file left beside it
    loaded = Llama(model_path=str(target), vocab_only=True, verbose=False)
    assert loaded.metadata["general.file_type"] == "7"  # LLAMA_FTYPE_MOSTLY_Q8_0
    made = target.stat().st_mtime_ns
    llama_server.our_flags(argv)
    assert target.stat().st_mtime_ns == made  # made once


def test_partial_copies_of_killed_servers_are_removed_and_a_live_ones_kept(tmp_path):
    from letta_cli.model import weights

    target = tmp_path / "SmolLM2-135M-Instruct.Q8_0.gguf"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".{target.name}.{dead.pid}.partial"
    live = tmp_path / f".{target.name}.{os.getpid()}.partial"
    other = tmp_path / f".other.gguf.{dead.pid}.partial"
    for path in (stale, live, other):
        path.write_bytes(b"half a model")
    weights.remove_dead_partials(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_a_copy_that_cannot_be_made_leaves_nothing_and_the_source_is_served(tmp_path, capfd):
    needs_model()
    source = tmp_path / "broken.Q4_1.gguf"
    source.write_bytes(b"GGUF but not really")
    target = tmp_path / "cache" / "broken.Q8_0.gguf"
    args, ours = llama_server.our_flags(["launcher", "--model", str(target), "--weights_from", str(source)])
    assert args == ["launcher", "--model", str(source)] and ours.threads_free is None
    assert "letta-cli: serving" in capfd.readouterr().err and list(target.parent.iterdir()) == []


def test_is_available_is_cheap_and_does_not_import_llama_cpp():
    code = (
        "import sys, letta_cli.model.local, letta_cli.model.local_setup as m; m.is_available(); "
        "print('llama_cpp' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "False"
