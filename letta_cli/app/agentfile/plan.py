"""Import, step one: map an agent file to our definitions, blocks and history lines, and check all of it
against the workspace. Nothing here writes.

An agent file comes from elsewhere, so what it says is not trusted where it decides where data or keys go:
its endpoint and its key variable are taken only when the user asks (trust_endpoints), its limits only as far
as the workspace's own, and system messages inside its conversation not at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from letta_cli.app.agentfile.format import (
    EXTENSION,
    RULE_FIRST,
    RULE_TERMINAL,
    AfAgent,
    AfBlockCreate,
    AfLLMConfig,
    AgentFile,
    Extension,
)
from letta_cli.app.agentfile.messages import to_history
from letta_cli.app.agentfile.names import agent_names, is_hostile, normalise_name, our_tags, strip_credentials
from letta_cli.app.agentfile.trusted_tools import ToolTrust
from letta_cli.core.config import describe_validation
from letta_cli.core.errors import Conflict, InvalidFile
from letta_cli.core.models import AgentDef, Block, HistoryEntry, PrivateBlock
from letta_cli.core.names import NAME_RULE
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace
from letta_cli.tools.registry import builtin_tools

MAX_BLOCK_CHARS = 1_000_000  # the largest block limit we accept (models.Block)
DEFAULT_BLOCK_LIMIT = 5000
NOT_OPENAI_ENDPOINTS = {"anthropic", "google_ai", "google_vertex", "bedrock", "azure", "cohere"}


@dataclass
class ImportPlan:
    """Everything an import will write, built and checked before the first byte is written."""

    agents: list[AgentDef] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)  # our name -> the name in the file
    shared_blocks: list[Block] = field(default_factory=list)
    histories: dict[str, list[HistoryEntry]] = field(default_factory=dict)
    disabled: dict[str, list[str]] = field(default_factory=dict)  # our name -> tools we will not run
    warnings: list[str] = field(default_factory=list)
    # our name -> the file's endpoint settings ("base_url https://...", "api_key_env X"): taken, or dropped
    endpoints: dict[str, list[str]] = field(default_factory=dict)
    endpoints_taken: bool = False
    tool_files: dict[str, str] = field(default_factory=dict)  # trusted Python tools: path -> code (tools.d/)


class _Planner:
    def __init__(
        self,
        ws: Workspace,
        af: AgentFile,
        source: str,
        renames: dict[str, str],
        prefix: str,
        trust_endpoints: bool,
        trust_tools: bool = False,
    ):
        self.ws, self.af, self.source = ws, af, source
        self.renames, self.prefix = renames, prefix
        self.plan = ImportPlan(endpoints_taken=trust_endpoints)
        self.blocks = self._index(af.blocks or [], "block")
        self.tools = self._index(af.tools or [], "tool")
        self._index(af.agents, "agent")
        self.builtins = set(builtin_tools())
        self.trust = ToolTrust(ws.root, source, trust_tools)

    def fail(self, message: str) -> InvalidFile:
        return InvalidFile(f"{self.source}: {message}")

    def _index(self, items: list[Any], what: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in items:
            if item.id in out:
                raise self.fail(f"two {what}s have the id {item.id!r}")
            out[item.id] = item
        return out

    # --- names ---------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        store = AgentStore(self.ws)
        names, normalised = agent_names(self.af.agents, self.renames, self.prefix, self.source, store.exists)
        if normalised:
            self.plan.warnings.append(f"agent names changed to our rule ({NAME_RULE}): {', '.join(normalised)}")
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

    def memory(
        self, a: AfAgent, name: str, shared_ids: set[str], shared: dict[str, tuple[str, Block]]
    ) -> dict[str, Any]:
        store = BlockStore(self.ws)
        private: dict[str, dict[str, Any]] = {}
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

    def tool_names(self, a: AfAgent, agent: str) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
        """(ours, disabled, descriptions of the disabled for the warning, command tools from trusted code)"""
        ours: list[str] = []
        disabled: list[str] = []
        why: list[str] = []
        commands: dict[str, Any] = {}
        entries: list[tuple[str, str | None, Any]] = []
        for tool_id in a.tool_ids or []:
            if tool_id not in self.tools:
                raise self.fail(f"agent {a.name!r} lists tool {tool_id!r}, which is not in the file")
            entries.append((self.tools[tool_id].name, self.tools[tool_id].tool_type, self.tools[tool_id]))
        entries += [(n, None, None) for n in a.tools or []]
        for name, tool_type, tool in entries:
            foreign = tool_type is not None and not tool_type.startswith("letta_")
            if name in self.builtins and not foreign:
                if name not in ours:
                    ours.append(name)
                continue
            foreign_code = tool_type is not None and tool_type.startswith(("custom", "external"))
            made = self.trust.take(tool, agent) if foreign_code and name not in self.builtins else None
            if made is not None and not isinstance(made, str):
                if name not in ours:
                    ours.append(name)
                commands[name] = made.spec
            elif name not in disabled:
                disabled.append(name)
                why.append(made if isinstance(made, str) else f"{name} ({tool_type})" if foreign_code else name)
        return ours, disabled, why, commands

    def tool_rules(self, a: AfAgent, name: str, disabled: list[str]) -> dict[str, Any]:
        first: str | None = None
        terminal: list[str] = []
        dropped: list[str] = []
        for rule in a.tool_rules or []:
            known = rule.tool_name in self.builtins or rule.tool_name in self.trust.names
            runnable = known and rule.tool_name not in disabled
            if rule.type in RULE_FIRST and runnable and first is None:
                first = rule.tool_name
            elif rule.type in RULE_TERMINAL and runnable:
                terminal += [] if rule.tool_name in terminal else [rule.tool_name]
            else:
                dropped.append(f"{rule.type}({rule.tool_name})")
        if dropped:
            self.plan.warnings.append(f"agent {name!r}: tool rules not carried: {', '.join(dropped)}")
        return {"first": first, "terminal": terminal}

    def model(self, a: AfAgent, name: str, ext: Extension) -> dict[str, Any]:
        llm = a.llm_config or AfLLMConfig()
        out: dict[str, Any] = {}
        if llm.model and ext.defaults.get("model") != llm.model:
            out["model"] = llm.model
        endpoint = llm.model_endpoint
        if endpoint and ext.defaults.get("model_endpoint") != endpoint:
            url = strip_credentials(endpoint)
            if (urlsplit(url).hostname or "") != "api.openai.com":
                out["base_url"] = url
        if ext.api_key_env:
            out["api_key_env"] = ext.api_key_env
        chosen = [f"{key} {out[key]}" for key in ("base_url", "api_key_env") if key in out]
        if chosen:
            self.plan.endpoints[name] = chosen
            if not self.plan.endpoints_taken:  # where our keys go is the user's choice, never the file's
                out.pop("base_url", None)
                out.pop("api_key_env", None)
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
            ours, disabled, why, commands = self.tool_names(a, name)
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
                "command_tools": commands,
                "memory": self.memory(a, name, shared_ids, shared),
                **self.model(a, name, ext),
            }
            if a.system is not None:
                data["system"] = a.system
            limits = self.limits(ext, name)
            if limits:
                data["limits"] = limits
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
        if plan.endpoints:
            listed = "; ".join(f"{name}: {', '.join(chosen)}" for name, chosen in plan.endpoints.items())
            plan.warnings.insert(
                0,
                f"the file's endpoints and key variables were taken (--trust-endpoints): {listed}"
                if plan.endpoints_taken
                else "the file's endpoints and key variables were not taken (this workspace's apply; "
                f"take them with --trust-endpoints): {listed}",
            )
        if plan.disabled:
            listed = "; ".join(f"{name}: {', '.join(why)}" for name, why in plan.disabled.items())
            hint = "; to run their Python code, import with --trust-tools" if self.trust.untrusted else ""
            plan.warnings.insert(0, f"tools that cannot run here are kept as disabled_tools, never run: {listed}{hint}")
        if self.trust.warning():
            plan.warnings.insert(0, str(self.trust.warning()))
        plan.tool_files = self.trust.files
        left = [f"{len(v)} {k}" for k in ("groups", "files", "sources", "mcp_servers") if (v := getattr(self.af, k))]
        if left:
            plan.warnings.append(f"not imported (no equivalent here): {', '.join(left)}")
        plan.warnings = list(dict.fromkeys(plan.warnings))  # a shared block's notes come once per agent
        return plan

    def limits(self, ext: Extension, name: str) -> dict[str, Any]:
        """The file's limits as far as they are no more generous than this workspace's: a file must not raise
        what a turn may cost (steps, tokens, history) or how long it may wait."""
        ours = self.ws.config.limits
        kept: dict[str, Any] = {}
        above: list[str] = []
        for key, value in ext.limits.items():
            here = getattr(ours, key, None)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if number and here is not None and value > here:
                above.append(f"{key} {value} (here {here})")
            else:  # anything else is checked by AgentDef
                kept[key] = value
        if above:
            self.plan.warnings.append(
                f"agent {name!r}: limits above this workspace's were not taken: {', '.join(above)}"
            )
        return kept

    def tags(self, a: AfAgent, name: str) -> list[str]:
        tags, changed = our_tags(a.tags or [])
        if changed:
            self.plan.warnings.append(f"agent {name!r}: tags changed to our rule: {', '.join(changed)}")
        return tags

    # --- history ---------------------------------------------------------------------------------------

    def history(self, a: AfAgent, name: str) -> list[HistoryEntry]:
        if self.ws.history_file(name).exists():
            path = self.ws.history_file(name)
            raise Conflict(f"agent {name!r} already has a history in {path}; import it under another name")
        entries, skipped = to_history(a, self.ws.config.limits.max_message_chars, self.source)
        planted = skipped.pop("system", 0)
        if planted:
            self.plan.warnings.append(
                f"agent {name!r}: {planted} system message(s) inside the conversation were not imported "
                "(instructions belong in its system prompt, where they can be read)"
            )
        if skipped:
            kinds = ", ".join(f"{n} {role}" for role, n in skipped.items())
            self.plan.warnings.append(f"agent {name!r}: messages with roles we do not have were skipped: {kinds}")
        return entries


def plan_import(
    ws: Workspace,
    af: AgentFile,
    *,
    source: str = "agent file",
    renames: dict[str, str] | None = None,
    prefix: str = "",
    with_history: bool = False,
    trust_endpoints: bool = False,
    trust_tools: bool = False,
) -> ImportPlan:
    """Map the file to our definitions, blocks and history lines and check them; writes nothing. The file's
    endpoints and key variables are taken only with trust_endpoints (and listed in a warning either way), its
    Python tools only with trust_tools (then they run as command tools: app/agentfile/trusted_tools.py)."""
    if not af.agents:
        raise InvalidFile(f"{source}: the file holds no agents")
    return _Planner(ws, af, source, renames or {}, prefix, trust_endpoints, trust_tools).build(with_history)
