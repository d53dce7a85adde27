"""The weights the local model serves: the packaged Q4_1 file, copied once as Q8_0 into the user's cache.

llama.cpp's CPU kernels evaluate Q8_0 much faster than Q4_1 on x86 (on this project's 2-core box, prompts at
115-157 against 75-102 tokens/s on one thread; docs/benchmarks.md), and from weights that were 4-bit to
begin with the 8-bit copy loses next to nothing: its next-token distributions differ from the Q4_1 model's by
a mean KL divergence of 0.004 (top-1 agreement 97%). The copy takes about a second, once per source file; it
is written to a temporary name and renamed, so a crash or a second process never leaves half a file to load.
A file named by $LETTA_CLI_GGUF is served as it is.

`copy_path` needs nothing but the standard library (model/local.py builds the server's command with it); only
`make_copy` imports llama_cpp, and only the server process calls it (model/llama_server.py).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from letta_cli.core.pids import pid_alive
from letta_cli.model.free_cpus import usable_cpus

CACHE_ENV = "XDG_CACHE_HOME"
SOURCE_TYPE = ".Q4_1"  # what the packaged file's name ends with (before .gguf)
SERVED_TYPE = ".Q8_0"
LLAMA_FTYPE_MOSTLY_Q8_0 = 7  # llama.h's enum llama_ftype


def cache_dir() -> Path | None:
    """$XDG_CACHE_HOME/letta-cli/weights, else ~/.cache/letta-cli/weights; None if neither can be named."""
    base = os.environ.get(CACHE_ENV, "").strip()
    if base and Path(base).is_absolute():
        return Path(base) / "letta-cli" / "weights"
    home = os.environ.get("HOME", "").strip()
    return Path(home) / ".cache" / "letta-cli" / "weights" if home and Path(home).is_absolute() else None


def copy_path(source: Path) -> Path | None:
    """Where the Q8_0 copy of `source` lives, or None if `source` is not a Q4_1 file or there is no cache.

    The name carries the source's size and modification time, so a new source (an upgraded package) gets
    its own copy rather than a stale one."""
    folder = cache_dir()
    if folder is None or not source.name.endswith(f"{SOURCE_TYPE}.gguf"):
        return None
    try:
        st = source.stat()
    except OSError:
        return None
    base = source.name.removesuffix(f"{SOURCE_TYPE}.gguf")
    return folder / f"{st.st_size:x}-{st.st_mtime_ns:x}" / f"{base}{SERVED_TYPE}.gguf"


def make_copy(source: Path, target: Path) -> None:
    """Write the Q8_0 copy of `source` to `target` (if it is not there yet), atomically; raise OSError if
    llama.cpp cannot."""
    if target.is_file():
        return
    import ctypes

    import llama_cpp

    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_partials(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = min(usable_cpus(), 4)
    try:
        if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params)) != 0:
            raise OSError(f"llama.cpp could not convert {source} to Q8_0")
        with open(partial, "rb") as f:
            os.fsync(f.fileno())
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def remove_dead_partials(target: Path) -> None:
    """Delete the partial copies of `target` whose writers are gone (a server killed while converting): 145 MB
    each, never loaded, and nothing else would remove them. One being written by a live process is left."""
    for partial in target.parent.glob(f".{target.name}.*.partial"):
        pid = partial.name.removeprefix(f".{target.name}.").removesuffix(".partial")
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
