"""The command line and environment of the local model's server (model/llama_server.py), which model/local.py
starts: the weights it loads, its threads, its prompt cache, and what it may inherit from our environment.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from letta_cli.model import free_cpus, weights
from letta_cli.model.local_setup import GGUF_ENV, LocalModelError

LAUNCHER = "letta_cli.model.llama_server"  # llama-cpp-python's server, with our chat handler registered
CHAT_FORMAT = "letta-chatml"  # our handler (model/llama_server.py): ChatML, grammar-bound tool calls, no escaping
EXTRA_ARGS_ENV = "LETTA_CLI_MODEL_ARGS"  # extra llama_cpp.server flags, shell-quoted; they win over ours
THREADS_ENV = "LETTA_CLI_MODEL_THREADS"  # threads of the server; default: see threads()
CONTEXT_TOKENS = 4096
CACHE_BYTES = 256 * 1024 * 1024  # the server's RAM cache of evaluated prompts, looked up by longest prefix
BATCH_TOKENS = 128
MOST_THREADS = 4  # the 135M model gains little beyond
# The launcher's own flags (model/llama_server.py takes them off before llama_cpp's server reads the rest):
WEIGHTS_FROM_FLAG = "--weights_from"  # make the file --model names from this one (model/weights.py), then serve it
THREADS_FREE_FLAG = "--threads_free"  # fit the threads to the free CPUs (model/free_cpus.py), up to N
EXIT_WITHOUT_FLAG = "--exit_without"  # stop once this folder (the workspace's .agents) is deleted or replaced
# Environment the server may inherit. Its settings are pydantic BaseSettings without a prefix, so a stray
# API_KEY, PORT, HOST, MODEL, CHAT_FORMAT, ... in our environment would silently reconfigure it.
ENV_NAMES = {
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TMPDIR", "TZ", "LD_LIBRARY_PATH", "VIRTUAL_ENV", weights.CACHE_ENV,
}  # fmt: skip
ENV_PREFIXES = ("LC_", "PYTHON", "GGML_", "LLAMA_", "OMP_", "CUDA_")


def threads() -> tuple[int, bool]:
    """(threads, whether they adapt): $LETTA_CLI_MODEL_THREADS, fixed; else the CPUs (at most 4), of which
    each batch the model evaluates takes those that other processes leave free (model/free_cpus.py).

    llama.cpp's threads spin while they wait for each other: on 2 cores, 2 threads are 1.6-1.8x faster than
    1 when the machine is idle and 2x slower when another process keeps a core busy (docs/benchmarks.md).
    """
    setting = os.environ.get(THREADS_ENV, "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise LocalModelError(f"{THREADS_ENV} must be a whole number of threads, got {setting!r}")
        return int(setting), False
    return min(free_cpus.usable_cpus(), MOST_THREADS), True


def served_weights(gguf: Path) -> tuple[Path, list[str]]:
    """The file the server loads, and the launcher's flags that make it: the packaged Q4_1 weights are served
    as their Q8_0 copy in the user's cache (model/weights.py), made on the first start; a file named by
    $LETTA_CLI_GGUF is served as it is."""
    copy = None if os.environ.get(GGUF_ENV) else weights.copy_path(gguf)
    return (copy, [WEIGHTS_FROM_FLAG, str(gguf)]) if copy is not None else (gguf, [])


def server_command(gguf: Path, port: int, state_dir: Path | None = None) -> list[str]:
    """The command line of the server; $LETTA_CLI_MODEL_ARGS comes last, so its flags win. With `state_dir`
    (the workspace's `.agents`), the server stops by itself once that folder is deleted."""
    count, adapt = threads()
    served, make = served_weights(gguf)
    flags = {
        "--model": str(served),
        "--model_alias": served.stem,
        "--chat_format": CHAT_FORMAT,
        "--host": "127.0.0.1",
        "--port": str(port),
        "--n_ctx": str(CONTEXT_TOKENS),
        "--n_threads": str(count),
        "--n_threads_batch": str(count),
        # Agents take turns on one server: keep the evaluated prompts of each, so a turn re-evaluates only what
        # follows the longest prefix it shares with an earlier prompt (llama-cpp-python's RAM cache).
        "--cache": "True",
        "--cache_size": str(CACHE_BYTES),
        "--n_batch": str(BATCH_TOKENS),
        "--n_ubatch": str(BATCH_TOKENS),
        "--logits_all": "False",
        "--interrupt_requests": "False",  # else one agent's request cuts off another's stream
        "--verbose": "False",
    }
    args = [item for pair in flags.items() for item in pair]
    ours = [*make, *([THREADS_FREE_FLAG, str(count)] if adapt else [])]  # the launcher's own flags
    if state_dir is not None:
        ours += [EXIT_WITHOUT_FLAG, str(state_dir)]
    return [sys.executable, "-m", LAUNCHER, *args, *ours, *shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))]


def server_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
