"""Letta Agent Files (.af): import them into the workspace and export agents as them.

An agent file is JSON with the top-level keys agents, blocks, tools, groups, files, sources, mcp_servers,
metadata and created_at; ids inside it are file-local ("agent-0", "block-1"). Import reads it with tolerant
models (unknown keys ignored, wrong types refused), builds every agent definition, block and history line in
memory, checks them against the workspace, and only then writes; if a write fails, what was written is
removed. Export builds the same shape with secrets blanked. docs/agent-files.md has the field mapping.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from letta_cli import __version__
from letta_cli.core.config import DEFAULT_MODEL, describe_validation
from letta_cli.core.errors import Conflict, InvalidFile, NotFound, UsageError
from letta_cli.core.ids import new_id, now
from letta_cli.core.models import USER, AgentDef, Block, HistoryEntry, PrivateBlock
from letta_cli.core.names import NAME_RULE, check_name, is_valid_name
from letta_cli.store.agents import AgentStore
from letta_cli.store.fsio import atomic_write, read_json_lines
from letta_cli.store.workspace import Workspace

MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any real agent file, far below what hurts
MAX_BLOCK_CHARS = 1_000_000  # the largest block limit we accept (models.Block)
DEFAULT_BLOCK_LIMIT = 5000
EXTENSION = "letta_cli"  # our key in an agent's `metadata`: what Letta has no field for

# Letta's values for what our definitions leave to the workspace (used on export, recognised on import).
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
NOT_OPENAI_ENDPOINTS = {"anthropic", "google_ai", "google_vertex", "bedrock", "azure", "cohere"}
RULE_FIRST = {"run_first", "InitToolRule"}
RULE_TERMINAL = {"exit_loop", "TerminalToolRule"}
HISTORY_ROLES = {"system", "user", "assistant", "tool"}


def builtin_tool_names() -> list[str]:
    from letta_cli.tools.registry import builtin_tools

    return list(builtin_tools())


# ------------------------------------------------------------------------------------ the file's shape


class _Lenient(BaseModel):
    """Letta adds fields every release: ignore what we do not use, refuse wrong types in what we do."""

    model_config = ConfigDict(extra="ignore")


Key = Annotated[str, Field(min_length=1, max_length=200)]


class AfBlockCreate(_Lenient):
    label: Key
    value: str = ""
    limit: int | None = Field(None, ge=1)
    description: str | None = Field(None, max_length=10_000)
    read_only: bool = False
    metadata: dict[str, Any] | None = None


class AfBlock(AfBlockCreate):
    id: Key


class AfTool(_Lenient):
    id: Key
    name: Key
    tool_type: str | None = Field(None, max_length=200)
    source_code: str | None = None


class AfToolRule(_Lenient):
    tool_name: Key
    type: Key


class AfLLMConfig(_Lenient):
    model: str | None = Field(None, max_length=200)
    model_endpoint_type: str | None = Field(None, max_length=200)
    model_endpoint: str | None = Field(None, max_length=2000)
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
    role: Key
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=200)
    tool_calls: list[AfToolCall] | None = None
    tool_call_id: str | None = Field(None, max_length=200)
    tool_returns: list[AfToolReturn] | None = None
    created_at: datetime | None = None


class Extension(BaseModel):
    """agent.metadata["letta_cli"]: what our definitions hold and Letta's do not, so a round trip is exact."""

    model_config = ConfigDict(extra="ignore")

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
    tags: list[Key] | None = None
    block_ids: list[Key] | None = None
    tool_ids: list[Key] | None = None
    tools: list[Key] | None = None  # tool names (Letta's CreateAgent)
    memory_blocks: list[AfBlockCreate] | None = None
    tool_rules: list[AfToolRule] | None = None
    llm_config: AfLLMConfig | None = None
    messages: list[AfMessage] | None = None
    metadata: dict[str, Any] | None = None


class AgentFile(_Lenient):
    agents: list[AfAgent]
    blocks: list[AfBlock] | None = None
    tools: list[AfTool] | None = None
    groups: list[Any] | None = None
    files: list[Any] | None = None
    sources: list[Any] | None = None
    mcp_servers: list[Any] | None = None
    metadata: dict[str, Any] | None = None


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


def read_agent_file(path: Path) -> AgentFile:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_agent_file(data, str(path))


# ----------------------------------------------------------------------------------------------- names


def normalise_name(raw: str) -> str:
    """A Letta name or label in our rule: lowercase, spaces to '-', other characters dropped ('' if none left)."""
    name = re.sub(r"\s+", "-", raw.strip().lower())
    name = re.sub(r"[^a-z0-9_-]", "", name)
    return name.lstrip("-_")[:64]


def is_hostile(raw: str) -> bool:
    """A name that tries to be a path (or hides control characters) is refused, never quietly cleaned."""
    return any(c in raw for c in "/\\") or raw.startswith(".") or any(ord(c) < 32 or ord(c) == 127 for c in raw)


def parse_renames(items: list[str]) -> dict[str, str]:
    """['Old Name=new-name', ...] -> {'Old Name': 'new-name'}"""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.rpartition("=")
        if not sep or not old:
            raise UsageError(f"--rename must look like OLD=NEW, got {item!r}")
        if old in out:
            raise UsageError(f"--rename {old!r} is given twice")
        out[old] = check_name(new.strip(), "agent name")
    return out


def strip_credentials(url: str) -> str:
    """A URL without user:password@ and without a query string (where keys like to hide)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # the URL itself is not shown: it may hold a password
        raise InvalidFile("a model endpoint is not a valid URL") from None
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


# ---------------------------------------------------------------------------------------------- import


@dataclass
class ImportPlan:
    """Everything an import will write, built and checked before the first byte is written."""

    agents: list[AgentDef] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)  # our name -> the name in the file
    shared_blocks: list[Block] = field(default_factory=list)
    histories: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    disabled: dict[str, list[str]] = field(default_factory=dict)  # our name -> tools we will not run
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    plan: ImportPlan
    paths: dict[str, Path]

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "agents": [
                {
                    "name": a.name,
                    "from": plan.origin[a.name],
                    "path": str(self.paths[a.name]),
                    "private_blocks": list(a.memory.blocks),
                    "shared_blocks": a.memory.shared,
                    "tools": a.tools,
                    "disabled_tools": a.disabled_tools,
                    "history": len(plan.histories.get(a.name, [])),
                }
                for a in plan.agents
            ],
            "shared_blocks": [b.label for b in plan.shared_blocks],
            "warnings": plan.warnings,
        }


class _Planner:
    def __init__(self, ws: Workspace, af: AgentFile, source: str, renames: dict[str, str], prefix: str):
        self.ws, self.af, self.source = ws, af, source
        self.renames, self.prefix = renames, prefix
        self.plan = ImportPlan()
        self.blocks = self._index(af.blocks or [], "block")
        self.tools = self._index(af.tools or [], "tool")
        self._index(af.agents, "agent")
        self.builtins = set(builtin_tool_names())

    def fail(self, message: str) -> InvalidFile:
        return InvalidFile(f"{self.source}: {message}")

    def _index(self, items: list, what: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in items:
            if item.id in out:
                raise self.fail(f"two {what}s have the id {item.id!r}")
            out[item.id] = item
        return out

    # --- names ---------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        names: list[str] = []
        normalised: list[str] = []
        for a in self.af.agents:
            if a.name in self.renames:
                names.append(self.renames[a.name])
                continue
            if is_hostile(a.name):
                raise self.fail(f"agent name {a.name!r} looks like a path; import it with --rename {a.name!r}=NEW")
            name = normalise_name(a.name)
            if name in self.renames:
                names.append(self.renames[name])
                continue
            if not name:
                raise self.fail(f"agent name {a.name!r} has no usable characters; use --rename {a.name!r}=NEW")
            if name != a.name:
                normalised.append(f"{a.name!r} -> {name!r}")
            full = self.prefix + name
            if not is_valid_name(full):
                raise UsageError(f"--prefix {self.prefix!r} makes the invalid agent name {full!r}: use {NAME_RULE}")
            names.append(full)
        known = {a.name for a in self.af.agents} | {normalise_name(a.name) for a in self.af.agents}
        unknown = set(self.renames) - known
        if unknown:
            raise UsageError(f"--rename: no agent named {sorted(unknown)[0]!r} in {self.source}")
        if normalised:
            self.plan.warnings.append(f"agent names changed to our rule ({NAME_RULE}): {', '.join(normalised)}")
        store = AgentStore(self.ws)
        seen: dict[str, str] = {}
        for a, name in zip(self.af.agents, names, strict=True):
            if name in seen:
                raise Conflict(
                    f"{self.source}: agents {seen[name]!r} and {a.name!r} would both be named {name!r}; use --rename"
                )
            seen[name] = a.name
            if store.exists(name):
                raise Conflict(f"agent {name!r} already exists; import it under another name with --rename or --prefix")
        return names

    def label(self, raw: str) -> str:
        if is_hostile(raw):
            raise self.fail(f"block label {raw!r} looks like a path")
        label = normalise_name(raw)
        if not label:
            raise self.fail(f"block label {raw!r} has no usable characters")
        if label != raw:
            self.plan.warnings.append(f"block label {raw!r} is imported as {label!r}")
        return label

    # --- blocks --------------------------------------------------------------------------------------

    def shared_ids(self) -> set[str]:
        """Ids of the blocks that become shared: used by two agents or more, or marked shared by our export."""
        users: dict[str, int] = {}
        shared: set[str] = set()
        for a in self.af.agents:
            marked = self.extension(a).shared
            for block_id in dict.fromkeys(a.block_ids or []):
                if block_id not in self.blocks:
                    raise self.fail(f"agent {a.name!r} lists block {block_id!r}, which is not in the file")
                users[block_id] = users.get(block_id, 0) + 1
                if users[block_id] > 1 or self.blocks[block_id].label in marked:
                    shared.add(block_id)
        orphans = [f"{b.label} ({b.id})" for b in self.blocks.values() if b.id not in users]
        if orphans:
            self.plan.warnings.append(f"blocks no agent uses were not imported: {', '.join(orphans)}")
        return shared

    def block_value(self, b: AfBlockCreate, label: str) -> tuple[int, str]:
        value = b.value
        if len(value) > MAX_BLOCK_CHARS:
            raise self.fail(f"block {label!r} holds {len(value)} characters, more than we allow ({MAX_BLOCK_CHARS})")
        limit = b.limit or max(DEFAULT_BLOCK_LIMIT, len(value))
        if limit > MAX_BLOCK_CHARS:
            raise self.fail(f"block {label!r} has limit {limit}, more than we allow ({MAX_BLOCK_CHARS})")
        if len(value) > limit:
            self.plan.warnings.append(f"block {label!r} holds {len(value)} characters, over its limit {limit}: raised")
            limit = len(value)
        return limit, value

    def memory(self, a: AfAgent, name: str, shared_ids: set[str], shared: dict[str, tuple[str, Block]]) -> dict:
        from letta_cli.store.blocks import BlockStore

        store = BlockStore(self.ws)
        private: dict[str, dict] = {}
        shared_labels: list[str] = []
        attached = [(self.blocks[i], i in shared_ids) for i in dict.fromkeys(a.block_ids or [])]
        attached += [(b, False) for b in a.memory_blocks or []]
        for b, is_shared in attached:
            label = self.label(b.label)
            if label in private or label in shared_labels:
                raise self.fail(f"agent {a.name!r} has two blocks labelled {label!r}")
            limit, value = self.block_value(b, label)
            if is_shared:
                shared_labels.append(label)
                block_id = getattr(b, "id", "")
                if label in shared and shared[label][0] != block_id:
                    raise self.fail(f"two different shared blocks are labelled {label!r}")
                if label not in shared:
                    if store.exists(label):
                        raise Conflict(f"shared block {label!r} already exists here; {self.source} not imported")
                    block = Block(
                        label=label,
                        value=value,
                        limit=limit,
                        description=b.description or "",
                        read_only=b.read_only,
                        metadata=b.metadata or {},
                    )
                    shared[label] = (block_id, block)
            else:
                if store.exists(label, owner=name):
                    raise Conflict(
                        f"a private block {label!r} of a former agent {name!r} is still in .agents/blocks; "
                        f"remove it or import under another name"
                    )
                private[label] = PrivateBlock(
                    value=value, limit=limit, description=b.description or "", read_only=b.read_only
                ).model_dump()
        return {"blocks": private, "shared": shared_labels}

    # --- tools, rules, model ---------------------------------------------------------------------------

    def tool_names(self, a: AfAgent) -> tuple[list[str], list[str], list[str]]:
        """(ours, disabled, descriptions of the disabled for the warning)"""
        ours: list[str] = []
        disabled: list[str] = []
        why: list[str] = []
        entries: list[tuple[str, str | None]] = []
        for tool_id in a.tool_ids or []:
            if tool_id not in self.tools:
                raise self.fail(f"agent {a.name!r} lists tool {tool_id!r}, which is not in the file")
            entries.append((self.tools[tool_id].name, self.tools[tool_id].tool_type))
        entries += [(n, None) for n in a.tools or []]
        for name, tool_type in entries:
            foreign = tool_type is not None and not tool_type.startswith("letta_")
            if name in self.builtins and not foreign:
                if name not in ours:
                    ours.append(name)
            elif name not in disabled:
                disabled.append(name)
                foreign_code = tool_type is not None and tool_type.startswith(("custom", "external"))
                why.append(f"{name} ({tool_type})" if foreign_code else name)
        return ours, disabled, why

    def tool_rules(self, a: AfAgent, name: str, disabled: list[str]) -> dict:
        first: str | None = None
        terminal: list[str] = []
        dropped: list[str] = []
        for rule in a.tool_rules or []:
            runnable = rule.tool_name in self.builtins and rule.tool_name not in disabled
            if rule.type in RULE_FIRST and runnable and first is None:
                first = rule.tool_name
            elif rule.type in RULE_TERMINAL and runnable:
                terminal += [] if rule.tool_name in terminal else [rule.tool_name]
            else:
                dropped.append(f"{rule.type}({rule.tool_name})")
        if dropped:
            self.plan.warnings.append(f"agent {name!r}: tool rules not carried: {', '.join(dropped)}")
        return {"first": first, "terminal": terminal}

    def model(self, a: AfAgent, name: str, ext: Extension) -> dict:
        llm = a.llm_config or AfLLMConfig()
        out: dict[str, Any] = {}
        if llm.model and ext.defaults.get("model") != llm.model:
            out["model"] = llm.model
        endpoint = llm.model_endpoint
        if endpoint and ext.defaults.get("model_endpoint") != endpoint:
            url = strip_credentials(endpoint)
            if (urlsplit(url).hostname or "") != "api.openai.com":
                out["base_url"] = url
        if llm.temperature is not None and ext.defaults.get("temperature") != llm.temperature:
            out["temperature"] = llm.temperature
        kind = llm.model_endpoint_type
        if kind in NOT_OPENAI_ENDPOINTS:
            self.plan.warnings.append(
                f"agent {name!r} used a {kind!r} endpoint; we speak the OpenAI protocol only: check model and base_url"
            )
        return out

    def extension(self, a: AfAgent) -> Extension:
        raw = (a.metadata or {}).get(EXTENSION)
        if raw is None:
            return Extension()
        try:
            return Extension.model_validate(raw)
        except ValidationError as exc:
            where = f"{self.source}: agent {a.name!r} metadata.{EXTENSION}"
            raise InvalidFile(describe_validation(where, exc)) from None

    # --- all together ----------------------------------------------------------------------------------

    def build(self, with_history: bool) -> ImportPlan:
        plan = self.plan
        names = self.names()
        shared_ids = self.shared_ids()
        shared: dict[str, tuple[str, Block]] = {}
        for a, name in zip(self.af.agents, names, strict=True):
            ext = self.extension(a)
            ours, disabled, why = self.tool_names(a)
            if why:
                plan.disabled[name] = why
            tools: list[str] | None = ours
            if ext.all_tools and set(ours) == self.builtins:
                tools = None
            data: dict[str, Any] = {
                "name": name,
                "description": a.description or "",
                "tags": self.tags(a, name),
                "tools": tools,
                "disabled_tools": list(dict.fromkeys(ext.disabled_tools + disabled)),
                "tool_rules": self.tool_rules(a, name, disabled),
                "memory": self.memory(a, name, shared_ids, shared),
                **self.model(a, name, ext),
            }
            if a.system is not None:
                data["system"] = a.system
            if ext.api_key_env:
                data["api_key_env"] = ext.api_key_env
            if ext.limits:
                data["limits"] = ext.limits
            try:
                agent = AgentDef.model_validate(data)
            except ValidationError as exc:
                raise InvalidFile(describe_validation(f"{self.source}: agent {a.name!r}", exc)) from None
            plan.agents.append(agent)
            plan.origin[name] = a.name
            if with_history:
                entries = self.history(a, name)
                if entries:
                    plan.histories[name] = entries
        plan.shared_blocks = [block for _, block in shared.values()]
        if plan.disabled:
            listed = "; ".join(f"{name}: {', '.join(why)}" for name, why in plan.disabled.items())
            plan.warnings.insert(0, f"tools that cannot run here are kept as disabled_tools, never run: {listed}")
        left = [f"{len(v)} {k}" for k in ("groups", "files", "sources", "mcp_servers") if (v := getattr(self.af, k))]
        if left:
            plan.warnings.append(f"not imported (no equivalent here): {', '.join(left)}")
        plan.warnings = list(dict.fromkeys(plan.warnings))  # a shared block's notes come once per agent
        return plan

    def tags(self, a: AfAgent, name: str) -> list[str]:
        out: list[str] = []
        changed: list[str] = []
        for raw in a.tags or []:
            tag = "" if is_hostile(raw) else normalise_name(raw)
            if tag != raw:
                changed.append(f"{raw!r} -> {tag!r}" if tag else f"{raw!r} dropped")
            if tag and tag not in out:
                out.append(tag)
        if changed:
            self.plan.warnings.append(f"agent {name!r}: tags changed to our rule: {', '.join(changed)}")
        return out

    # --- history ---------------------------------------------------------------------------------------

    def history(self, a: AfAgent, name: str) -> list[HistoryEntry]:
        if self.ws.history_file(name).exists():
            path = self.ws.history_file(name)
            raise Conflict(f"agent {name!r} already has a history in {path}; import it under another name")
        max_chars = self.ws.config.limits.max_message_chars
        messages = list(a.messages or [])
        if messages and messages[0].role == "system":
            messages = messages[1:]  # Letta's compiled system prompt: ours is rebuilt on every call
        entries: list[HistoryEntry] = []
        skipped: dict[str, int] = {}
        turn_id, seq = new_id(), 0
        for m in messages:
            if m.role not in HISTORY_ROLES:
                skipped[m.role] = skipped.get(m.role, 0) + 1
                continue
            if m.role == "user" and entries:
                turn_id, seq = new_id(), 0
            content = message_text(m)
            if content is not None and len(content) > max_chars:
                raise self.fail(
                    f"a message of agent {a.name!r} has {len(content)} characters, more than we allow ({max_chars})"
                )
            calls = [c.model_dump(include={"id", "type", "function"}) for c in m.tool_calls or []] or None
            entries.append(
                HistoryEntry(
                    turn_id=turn_id,
                    seq=seq,
                    role=m.role,
                    content=content,
                    tool_calls=calls,
                    tool_call_id=m.tool_call_id if m.role == "tool" else None,
                    name=m.name,
                    sender=USER if m.role == "user" else None,
                    created_at=m.created_at or now(),
                )
            )
            seq += 1
        if skipped:
            kinds = ", ".join(f"{n} {role}" for role, n in skipped.items())
            self.plan.warnings.append(f"agent {name!r}: messages with roles we do not have were skipped: {kinds}")
        return entries


def message_text(m: AfMessage) -> str | None:
    """The text of a Letta message: its text parts (reasoning dropped), else a tool return's response."""
    if isinstance(m.content, str):
        text: str | None = m.content
    else:
        parts = [p["text"] for p in m.content or [] if p.get("type") == "text" and isinstance(p.get("text"), str)]
        text = "\n".join(parts) if parts else None
    if text is None and m.tool_returns:
        text = next((r.func_response for r in m.tool_returns if r.func_response is not None), None)
    if m.role == "user" and text and text.startswith("{"):
        with contextlib.suppress(ValueError):  # older Letta wrapped user text: {"type": "user_message", ...}
            wrapped = json.loads(text)
            if isinstance(wrapped, dict) and wrapped.get("type") == "user_message":
                text = wrapped["message"] if isinstance(wrapped.get("message"), str) else text
    return text


def plan_import(
    ws: Workspace,
    af: AgentFile,
    *,
    source: str = "agent file",
    renames: dict[str, str] | None = None,
    prefix: str = "",
    with_history: bool = False,
) -> ImportPlan:
    """Map the file to our definitions, blocks and history lines and check them; writes nothing."""
    if not af.agents:
        raise InvalidFile(f"{source}: the file holds no agents")
    return _Planner(ws, af, source, renames or {}, prefix).build(with_history)


def apply_import(ws: Workspace, plan: ImportPlan) -> ImportResult:
    """Write a checked plan: shared blocks, then agent files, then histories; on any failure, undo."""
    from letta_cli.store.blocks import BlockStore

    store, agents = BlockStore(ws), AgentStore(ws)
    fresh = [d for d in (ws.agents_dir, ws.state_dir) if not d.exists()]
    fresh_sub = [d for d in (ws.blocks_dir / "shared", ws.blocks_dir, ws.history_dir) if not d.exists()]
    created: list[Path] = []
    paths: dict[str, Path] = {}
    try:
        ws.ensure_state()
        for block in plan.shared_blocks:
            folder = store.path(block.label).parent
            before = set(folder.iterdir()) if folder.is_dir() else set()
            try:
                store.create(block, actor="import")
            finally:  # the block, its change log and its lock file: all new, all ours
                if folder.is_dir():
                    created += sorted(p for p in set(folder.iterdir()) - before if block.label in p.name)
        for agent in plan.agents:
            paths[agent.name] = agents.save(agent)
            created.append(paths[agent.name])
        for name, entries in plan.histories.items():
            path = ws.history_file(name)
            if path.exists():
                raise Conflict(f"agent {name!r} got a history while importing; nothing imported")
            lines = "".join(e.model_dump_json(exclude_none=True) + "\n" for e in entries)
            atomic_write(path, lines)
            created.append(path)
    except BaseException:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in fresh_sub:
            with contextlib.suppress(OSError):
                folder.rmdir()
        for folder in fresh:  # did not exist before this import: all inside is ours
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return ImportResult(plan, paths)


def import_agent_file(
    ws: Workspace,
    af: AgentFile,
    *,
    source: str = "agent file",
    renames: dict[str, str] | None = None,
    prefix: str = "",
    with_history: bool = False,
) -> ImportResult:
    plan = plan_import(ws, af, source=source, renames=renames, prefix=prefix, with_history=with_history)
    return apply_import(ws, plan)


# ---------------------------------------------------------------------------------------------- export


class _Exporter:
    def __init__(self, ws: Workspace):
        from letta_cli.store.blocks import BlockStore

        self.ws = ws
        self.store = BlockStore(ws)
        self.blocks: list[dict] = []
        self.block_ids: dict[tuple[str, str | None], str] = {}  # (label, owner or None) -> block-N
        self.tools: list[dict] = []
        self.tool_ids: dict[str, str] = {}
        self.message_count = 0
        from letta_cli.tools.registry import builtin_tools

        self.registry = builtin_tools()

    def block_id(self, label: str, owner: str | None, agent: AgentDef) -> str:
        key = (label, owner)
        if key in self.block_ids:
            return self.block_ids[key]
        if owner is None:
            if not self.store.exists(label):
                raise NotFound(f"agent {agent.name!r} lists shared block {label!r}, which does not exist")
            block = self.store.get(label)
        elif self.store.exists(label, owner=owner):
            block = self.store.get(label, owner=owner)
        else:  # never used yet: its value is still the one in the agent file
            p = agent.memory.blocks[label]
            block = Block(label=label, value=p.value, limit=p.limit, description=p.description, read_only=p.read_only)
        block_id = self.block_ids[key] = f"block-{len(self.blocks)}"
        self.blocks.append(
            {
                "id": block_id,
                "label": block.label,
                "value": block.value,
                "limit": block.limit,
                "description": block.description,
                "read_only": block.read_only,
                "metadata": block.metadata,
                "is_template": False,
                "template_name": None,
                "preserve_on_migration": False,
            }
        )
        return block_id

    def tool_id(self, name: str) -> str:
        if name not in self.tool_ids:
            tool_type = TOOL_TYPES.get(name, "letta_core")
            schema = self.registry[name].schema["function"]
            self.tool_ids[name] = f"tool-{len(self.tools)}"
            self.tools.append(
                {
                    "id": self.tool_ids[name],
                    "name": name,
                    "tool_type": tool_type,
                    "description": schema.get("description", ""),
                    "source_type": "python",
                    "source_code": None,
                    "tags": [tool_type],
                    "json_schema": schema,
                    "return_char_limit": 6000,
                }
            )
        return self.tool_ids[name]

    def messages(self, agent: AgentDef, agent_id: str, with_history: bool) -> list[dict]:
        """Letta keeps the system prompt as the first in-context message; the history follows, if asked."""
        entries = [HistoryEntry(turn_id="", seq=0, role="system", content=agent.system)]
        if with_history:
            for obj in read_json_lines(self.ws.history_file(agent.name)):
                with contextlib.suppress(ValidationError):
                    entries.append(HistoryEntry.model_validate(obj))
        out = []
        for e in entries:
            calls = [
                {"id": c.get("id"), "type": "function", "function": dict(c.get("function") or {})}
                for c in e.tool_calls or []
                if isinstance(c, dict)
            ]
            out.append(
                {
                    "type": "message",
                    "id": f"message-{self.message_count}",
                    "agent_id": agent_id,
                    "role": e.role,
                    "content": [] if e.content is None else [{"type": "text", "text": e.content}],
                    "name": e.name,
                    "tool_calls": calls or None,
                    "tool_call_id": e.tool_call_id,
                    "tool_returns": [],
                    "created_at": e.created_at.isoformat(),
                }
            )
            self.message_count += 1
        return out

    def agent(self, agent: AgentDef, index: int, with_history: bool) -> dict:
        config = self.ws.config
        agent_id = f"agent-{index}"
        block_ids = [self.block_id(label, agent.name, agent) for label in agent.memory.blocks]
        block_ids += [self.block_id(label, None, agent) for label in agent.memory.shared]
        tools = list(self.registry) if agent.tools is None else [t for t in agent.tools if t in self.registry]
        first = [agent.tool_rules.first] if agent.tool_rules.first else []
        rules = [{"tool_name": t, "type": "run_first", "prompt_template": None} for t in first]
        rules += [{"tool_name": t, "type": "exit_loop", "prompt_template": None} for t in agent.tool_rules.terminal]
        defaults: dict[str, Any] = {}
        model = agent.model or defaults.setdefault("model", config.model or DEFAULT_MODEL)
        endpoint = (
            strip_credentials(agent.base_url)
            if agent.base_url
            else defaults.setdefault(
                "model_endpoint", strip_credentials(config.base_url) if config.base_url else LETTA_ENDPOINT
            )
        )
        temperature = agent.temperature
        if temperature is None:
            temperature = defaults.setdefault("temperature", LETTA_TEMPERATURE)
        ext = Extension(
            defaults=defaults,
            all_tools=agent.tools is None,
            shared=agent.memory.shared,
            disabled_tools=agent.disabled_tools,
            api_key_env=agent.api_key_env,
            limits=agent.limits.model_dump(exclude_none=True),
        )
        messages = self.messages(agent, agent_id, with_history)
        return {
            "id": agent_id,
            "name": agent.name,
            "description": agent.description,
            "system": agent.system,
            "agent_type": "letta_v1_agent",
            "tags": agent.tags,
            "block_ids": block_ids,
            "tool_ids": [self.tool_id(t) for t in tools],
            "tool_rules": rules,
            "llm_config": {
                "model": model,
                "model_endpoint_type": "openai",
                "model_endpoint": endpoint,
                "context_window": CONTEXT_WINDOW,
                "temperature": temperature,
            },
            "memory_blocks": [],
            "tools": [],
            "source_ids": [],
            "include_base_tools": False,
            "include_multi_agent_tools": False,
            "include_base_tool_rules": False,
            "include_default_source": False,
            "tool_exec_environment_variables": {},
            "secrets": None,
            "metadata": {EXTENSION: ext.model_dump(mode="json", exclude_defaults=True) | {"version": 1}},
            "in_context_message_ids": [m["id"] for m in messages],
            "messages": messages,
            "files_agents": [],
            "group_ids": [],
        }


def export_agents(ws: Workspace, names: list[str], *, with_history: bool = False) -> dict[str, Any]:
    """A Letta agent file (as a dict) holding the named agents, their blocks and built-in tools."""
    if not names:
        raise UsageError("name at least one agent to export")
    store = AgentStore(ws)
    agents = [store.get(name) for name in dict.fromkeys(names)]
    exporter = _Exporter(ws)
    exported = [exporter.agent(agent, i, with_history) for i, agent in enumerate(agents)]
    return {
        "agents": exported,
        "groups": [],
        "blocks": exporter.blocks,
        "files": [],
        "sources": [],
        "tools": exporter.tools,
        "mcp_servers": [],
        "metadata": {"exported_by": f"letta-cli {__version__}"},
        "created_at": now().isoformat(),
    }


def dump_agent_file(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
