"""Workspace settings from agents.toml: defaults for model, endpoint and limits."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from letta_cli.core.errors import InvalidFile
from letta_cli.core.tool_specs import CommandToolSpec, check_tool_table

DEFAULT_MODEL = "gpt-4o-mini"


DAY = 86_400.0  # the longest a retry waits, a wait-for-reply waits, or a model request may take


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inf/NaN pass `ge` and then overflow

    max_steps: int = Field(10, ge=1, le=1000, description="model calls per turn")
    history_messages: int = Field(40, ge=0, description="recent history entries sent with each request")
    history_chars: int = Field(24_000, ge=0, description="character budget for history in a request")
    max_message_chars: int = Field(100_000, ge=1, description="largest message body accepted")
    concurrency: int = Field(64, ge=1, description="model calls in flight at once")
    broadcast_concurrency: int = Field(64, ge=1, description="turns a single broadcast runs at once")
    hop_limit: int = Field(8, ge=1, description="agent-to-agent hops in one chain")
    chain_turn_budget: int = Field(256, ge=1, description="agent-to-agent turns one chain may run")
    max_attempts: int = Field(5, ge=1, le=1000, description="tries before a message is dead-lettered")
    retry_backoff: float = Field(0.5, ge=0, le=DAY, description="seconds before the first retry; doubles each time")
    wait_timeout: float = Field(300.0, gt=0, le=DAY, description="seconds a wait-for-reply tool call waits")
    model_timeout: float = Field(120.0, gt=0, le=DAY, description="seconds for one model request")
    model_retries: int = Field(4, ge=0, description="SDK retries on 429/5xx/timeouts per model request")
    max_tokens: int | None = Field(None, ge=1, description="completion tokens per model call (unset: the server's)")
    chain_token_budget: int | None = Field(None, ge=1, description="tokens one chain may use")
    agent_token_budget: int | None = Field(None, ge=1, description="tokens one agent may use per chain")
    daemon_idle_timeout: float = Field(
        60.0, ge=0, description="seconds the scheduler daemon stays without work before it exits (0: no daemon)"
    )


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: float = Field(0.0, ge=0, description="USD per million prompt tokens")
    completion: float = Field(0.0, ge=0, description="USD per million completion tokens")


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    limits: Limits = Field(default_factory=Limits)
    prices: dict[str, Price] = Field(default_factory=dict)
    tools: dict[str, CommandToolSpec] = Field(default_factory=dict)  # command tools (docs/tools.md)

    _tool_names = field_validator("tools")(check_tool_table)


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, naming the file (and line) on any error."""
    try:
        text = read_regular(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidFile(f"{path}: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidFile(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise InvalidFile(f"{path}: invalid TOML: nested too deeply") from None


def read_regular(path: Path) -> bytes:
    """A file's bytes; InvalidFile if it is not a regular file (a FIFO would block the read for ever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidFile(f"{path}: not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def describe_validation(path: Path | str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}: {where}: {first['msg']}{more}"


def load_config(path: Path) -> WorkspaceConfig:
    if not path.exists():
        return WorkspaceConfig()
    try:
        return WorkspaceConfig.model_validate(load_toml(path))
    except ValidationError as exc:
        raise InvalidFile(describe_validation(path, exc)) from None


CONFIG_TEMPLATE = """\
# letta-cli workspace settings. Every key is optional; the values shown are the defaults.
version = 1

# Default model for agents that do not name one. "local" runs the embedded model (agents model serve).
# model = "gpt-4o-mini"

# Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp). Falls back to $OPENAI_BASE_URL.
# base_url = "http://127.0.0.1:8000/v1"

# Name of the environment variable holding the API key. The key itself is never stored.
# api_key_env = "OPENAI_API_KEY"

[limits]
# max_steps = 10              # model calls per turn
# history_messages = 40       # recent history entries sent with each request
# history_chars = 24000       # character budget for history in a request
# max_message_chars = 100000  # largest message body accepted
# concurrency = 64            # model calls in flight at once
# broadcast_concurrency = 64  # turns a single broadcast runs at once
# hop_limit = 8               # agent-to-agent hops in one chain
# chain_turn_budget = 256     # agent-to-agent turns one chain may run
# max_attempts = 5            # tries before a message is dead-lettered
# retry_backoff = 0.5         # seconds before the first retry; doubles each time
# wait_timeout = 300          # seconds a wait-for-reply tool call waits
# model_timeout = 120         # seconds for one model request
# model_retries = 4           # retries on 429/5xx/timeouts per model request
# max_tokens = 512            # completion tokens per model call (unset: the server's default)
# chain_token_budget = 200000 # tokens one chain may use (unset: no budget)
# agent_token_budget = 50000  # tokens one agent may use within one chain (unset: no budget)
# daemon_idle_timeout = 60    # seconds the scheduler daemon waits for work before it exits (0: no daemon)

# Prices in USD per million tokens, for `agents usage` estimates.
# [prices.gpt-4o-mini]
# prompt = 0.15
# completion = 0.60
"""
