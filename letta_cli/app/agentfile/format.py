"""The Letta Agent File format: one set of models, read by import and filled by export.

A field that import reads is typed, and a wrong type is refused; unknown keys are ignored, because Letta adds
fields every release. A field that only export writes is SkipValidation: a Letta file may hold anything
there (Letta changes them too), and its default is the value export writes. The order of the fields is the
order of the keys export writes.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, SkipValidation, ValidationError

from letta_cli.core.config import describe_validation
from letta_cli.core.errors import InvalidFile
from letta_cli.core.ids import now

MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any real agent file, far below what hurts
EXTENSION = "letta_cli"  # our key in an agent's `metadata`: what Letta has no field for

# Letta's values for what our definitions leave to the workspace (written by export, recognised by import).
LETTA_ENDPOINT = "https://api.openai.com/v1"
LETTA_TEMPERATURE = 0.7
CONTEXT_WINDOW = 128_000

# The tool_type Letta gives each of our built-in tools (memory_* are "sleeptime" tools in Letta's files).
TOOL_TYPES = {
    "send_message": "letta_core",
    "core_memory_append": "letta_memory_core",
    "core_memory_replace": "letta_memory_core",
    "memory_insert": "letta_sleeptime_core",
    "memory_replace": "letta_sleeptime_core",
    "memory_rethink": "letta_sleeptime_core",
    "send_message_to_agent_async": "letta_multi_agent_core",
    "send_message_to_agent_and_wait_for_reply": "letta_multi_agent_core",
    "send_message_to_agents_matching_all_tags": "letta_multi_agent_core",
}
RULE_FIRST = {"run_first", "InitToolRule"}  # the names Letta has used for a rule type, old and new
RULE_TERMINAL = {"exit_loop", "TerminalToolRule"}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


Key = Annotated[str, Field(min_length=1, max_length=200)]


def _iso(t: Any) -> Any:
    # a Letta file's value of a field we never read is kept as it came: written back as it was
    return t.isoformat() if isinstance(t, datetime) else t


# Python's isoformat (+00:00, no zero microseconds), as Letta writes times; pydantic's own form ends in Z.
Time = Annotated[datetime, PlainSerializer(_iso)]


class _Id(_Lenient):
    id: Key


class AfBlockCreate(_Lenient):
    """A block: inline in an agent's memory_blocks (no id), or in the file's blocks (AfBlock)."""

    label: Key
    value: str = ""
    limit: int | None = Field(None, ge=1)
    description: str | None = Field(None, max_length=10_000)
    read_only: bool = False
    metadata: dict[str, Any] | None = None


class AfBlock(AfBlockCreate, _Id):  # _Id last: pydantic puts its `id` first
    is_template: SkipValidation[bool] = False
    template_name: SkipValidation[str | None] = None
    preserve_on_migration: SkipValidation[bool] = False


class AfTool(_Lenient):
    id: Key
    name: Key
    tool_type: str | None = Field(None, max_length=200)
    description: SkipValidation[str] = ""
    source_type: SkipValidation[str] = "python"
    source_code: str | None = None
    tags: SkipValidation[list[str]] = Field(default_factory=list)
    json_schema: SkipValidation[dict[str, Any]] = Field(default_factory=dict)
    return_char_limit: SkipValidation[int] = 6000


class AfToolRule(_Lenient):
    tool_name: Key
    type: Key
    prompt_template: SkipValidation[str | None] = None


class AfLLMConfig(_Lenient):
    model: str | None = Field(None, max_length=200)
    model_endpoint_type: str | None = Field(None, max_length=200)
    model_endpoint: str | None = Field(None, max_length=2000)
    context_window: SkipValidation[int] = CONTEXT_WINDOW
    temperature: float | None = None


class AfFunction(_Lenient):
    name: Key
    arguments: str = ""


class AfToolCall(_Lenient):
    id: Key
    type: str = "function"
    function: AfFunction


class AfToolReturn(_Lenient):
    func_response: str | None = None


class AfMessage(_Lenient):
    type: SkipValidation[str] = "message"
    id: SkipValidation[str] = ""
    agent_id: SkipValidation[str] = ""
    role: Key
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=200)
    tool_calls: list[AfToolCall] | None = None
    tool_call_id: str | None = Field(None, max_length=200)
    tool_returns: list[AfToolReturn] | None = None
    created_at: Time | None = None


class Extension(_Lenient):
    """agent.metadata["letta_cli"]: what our definitions hold and Letta's do not, so a round trip is exact."""

    version: int = 1
    defaults: dict[str, Any] = Field(default_factory=dict)  # llm_config values that stood for "unset"
    all_tools: bool = False  # tools unset: every built-in tool
    shared: list[str] = Field(default_factory=list)  # shared block labels, even if only this agent uses them
    disabled_tools: list[str] = Field(default_factory=list)
    api_key_env: str | None = None
    limits: dict[str, Any] = Field(default_factory=dict)


class AfAgent(_Lenient):
    id: Key
    name: Key
    description: str | None = None
    system: str | None = None
    agent_type: SkipValidation[str] = "letta_v1_agent"
    tags: list[Key] | None = None
    block_ids: list[Key] | None = None
    tool_ids: list[Key] | None = None
    tool_rules: list[AfToolRule] | None = None
    llm_config: AfLLMConfig | None = None
    memory_blocks: list[AfBlockCreate] | None = None
    tools: list[Key] | None = None  # tool names (Letta's CreateAgent)
    source_ids: SkipValidation[list[str]] = Field(default_factory=list)
    include_base_tools: SkipValidation[bool] = False
    include_multi_agent_tools: SkipValidation[bool] = False
    include_base_tool_rules: SkipValidation[bool] = False
    include_default_source: SkipValidation[bool] = False
    # never read, exported blank: an agent file holds no secrets
    tool_exec_environment_variables: SkipValidation[dict[str, str]] = Field(default_factory=dict)
    secrets: SkipValidation[dict[str, str] | None] = None
    metadata: dict[str, Any] | None = None
    in_context_message_ids: SkipValidation[list[str]] = Field(default_factory=list)
    messages: list[AfMessage] | None = None
    files_agents: SkipValidation[list[Any]] = Field(default_factory=list)
    group_ids: SkipValidation[list[str]] = Field(default_factory=list)


class AgentFile(_Lenient):
    agents: list[AfAgent]
    groups: list[Any] | None = None
    blocks: list[AfBlock] | None = None
    files: list[Any] | None = None
    sources: list[Any] | None = None
    tools: list[AfTool] | None = None
    mcp_servers: list[Any] | None = None
    metadata: dict[str, Any] | None = None
    created_at: SkipValidation[Time] = Field(default_factory=now)


# ------------------------------------------------------------------------------------ bytes <-> models


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(text: str, source: str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise InvalidFile(f"{source}: {what} is nested too deeply") from None
    except ValueError as exc:
        raise InvalidFile(f"{source}: {what} is not valid JSON ({exc})") from None


def parse_agent_file(data: bytes, source: str) -> AgentFile:
    """Bytes of an .af file -> AgentFile; any problem is one InvalidFile line naming `source`."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidFile(f"{source}: {len(data)} bytes, more than an agent file may have ({MAX_FILE_BYTES})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidFile(f"{source}: not UTF-8 text") from None
    doc = _load_json(text, source, "the file")
    if isinstance(doc, str):  # saved from Letta's API, which returns the document as a JSON string
        doc = _load_json(doc, source, "the JSON string in the file")
    if not isinstance(doc, dict):
        raise InvalidFile(f"{source}: not a Letta agent file (the top level is a {type(doc).__name__}, not an object)")
    try:
        return AgentFile.model_validate(doc)
    except ValidationError as exc:
        raise InvalidFile(describe_validation(source, exc)) from None


def dump_agent_file(af: AgentFile) -> str:
    """Plain JSON (never the JSON string Letta's API returns), keys in the models' order."""
    return json.dumps(af.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"
