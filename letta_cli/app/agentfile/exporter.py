"""Export: agents, their blocks (shared ones once) and built-in tools as a Letta agent file.

The file is built from the format's models with model_construct, not validated again: every value comes from
our own files, already validated by their models, and export must not refuse what it has always written (a
block description longer than import accepts, a tool call a model left without a name). Secrets never go in.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from letta_cli import __version__
from letta_cli.app.agentfile.format import (
    EXTENSION,
    LETTA_ENDPOINT,
    LETTA_TEMPERATURE,
    TOOL_TYPES,
    AfAgent,
    AfBlock,
    AfLLMConfig,
    AfMessage,
    AfTool,
    AfToolRule,
    AgentFile,
    Extension,
    dump_agent_file,
)
from letta_cli.app.agentfile.messages import to_letta
from letta_cli.app.agentfile.names import shareable_url
from letta_cli.core.config import DEFAULT_MODEL
from letta_cli.core.errors import Conflict, NotFound, UsageError
from letta_cli.core.models import AgentDef, Block, HistoryEntry
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.fsio import atomic_write, read_json_lines
from letta_cli.store.workspace import Workspace
from letta_cli.tools.registry import builtin_tools


class _Exporter:
    def __init__(self, ws: Workspace):
        self.ws = ws
        self.store = BlockStore(ws)
        self.blocks: list[AfBlock] = []
        self.block_ids: dict[tuple[str, str | None], str] = {}  # (label, owner or None) -> block-N
        self.tools: list[AfTool] = []
        self.tool_ids: dict[str, str] = {}
        self.message_count = 0
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
            AfBlock.model_construct(
                id=block_id,
                label=block.label,
                value=block.value,
                limit=block.limit,
                description=block.description,
                read_only=block.read_only,
                metadata=block.metadata,
            )
        )
        return block_id

    def tool_id(self, name: str) -> str:
        if name not in self.tool_ids:
            tool_type = TOOL_TYPES.get(name, "letta_core")
            schema = self.registry[name].schema["function"]
            self.tool_ids[name] = f"tool-{len(self.tools)}"
            self.tools.append(
                AfTool.model_construct(
                    id=self.tool_ids[name],
                    name=name,
                    tool_type=tool_type,
                    description=schema.get("description", ""),
                    source_code=None,
                    tags=[tool_type],
                    json_schema=schema,
                )
            )
        return self.tool_ids[name]

    def messages(self, agent: AgentDef, agent_id: str, with_history: bool) -> list[AfMessage]:
        """Letta keeps the system prompt as the first in-context message; the history follows, if asked."""
        entries = [HistoryEntry(turn_id="", seq=0, role="system", content=agent.system)]
        if with_history:
            for obj in read_json_lines(self.ws.history_file(agent.name)):
                with contextlib.suppress(ValidationError):
                    entries.append(HistoryEntry.model_validate(obj))
        out = []
        for e in entries:
            out.append(to_letta(e, f"message-{self.message_count}", agent_id))
            self.message_count += 1
        return out

    def llm_config(self, agent: AgentDef) -> tuple[AfLLMConfig, dict[str, Any]]:
        """Letta's llm_config, and which of its values stand for "unset" (the workspace's or Letta's)."""
        config = self.ws.config
        defaults: dict[str, Any] = {}
        model = agent.model or defaults.setdefault("model", config.model or DEFAULT_MODEL)
        endpoint = (
            shareable_url(agent.base_url)
            if agent.base_url
            else defaults.setdefault(
                "model_endpoint", shareable_url(config.base_url) if config.base_url else LETTA_ENDPOINT
            )
        )
        temperature = agent.temperature
        if temperature is None:
            temperature = defaults.setdefault("temperature", LETTA_TEMPERATURE)
        llm = AfLLMConfig.model_construct(
            model=model, model_endpoint_type="openai", model_endpoint=endpoint, temperature=temperature
        )
        return llm, defaults

    def agent(self, agent: AgentDef, index: int, with_history: bool) -> AfAgent:
        agent_id = f"agent-{index}"
        block_ids = [self.block_id(label, agent.name, agent) for label in agent.memory.blocks]
        block_ids += [self.block_id(label, None, agent) for label in agent.memory.shared]
        tools = list(self.registry) if agent.tools is None else [t for t in agent.tools if t in self.registry]
        first = [agent.tool_rules.first] if agent.tool_rules.first else []
        rules = [AfToolRule.model_construct(tool_name=t, type="run_first") for t in first]
        rules += [AfToolRule.model_construct(tool_name=t, type="exit_loop") for t in agent.tool_rules.terminal]
        llm, defaults = self.llm_config(agent)
        ext = Extension(
            defaults=defaults,
            all_tools=agent.tools is None,
            shared=agent.memory.shared,
            disabled_tools=agent.disabled_tools,
            api_key_env=agent.api_key_env,
            limits=agent.limits.model_dump(exclude_none=True),
        )
        messages = self.messages(agent, agent_id, with_history)
        return AfAgent.model_construct(
            id=agent_id,
            name=agent.name,
            description=agent.description,
            system=agent.system,
            tags=agent.tags,
            block_ids=block_ids,
            tool_ids=[self.tool_id(t) for t in tools],
            tool_rules=rules,
            llm_config=llm,
            memory_blocks=[],
            tools=[],
            metadata={EXTENSION: ext.model_dump(mode="json", exclude_defaults=True) | {"version": 1}},
            in_context_message_ids=[m.id for m in messages],
            messages=messages,
        )


def export_agents(ws: Workspace, names: list[str], *, with_history: bool = False) -> AgentFile:
    """A Letta agent file holding the named agents, their blocks and built-in tools."""
    if not names:
        raise UsageError("name at least one agent to export")
    store = AgentStore(ws)
    agents = [store.get(name) for name in dict.fromkeys(names)]
    exporter = _Exporter(ws)
    exported = [exporter.agent(agent, i, with_history) for i, agent in enumerate(agents)]
    return AgentFile.model_construct(
        agents=exported,
        groups=[],
        blocks=exporter.blocks,
        files=[],
        sources=[],
        tools=exporter.tools,
        mcp_servers=[],
        metadata={"exported_by": f"letta-cli {__version__}"},
    )


@dataclass
class ExportSummary:
    """What `agents export -o FILE` wrote."""

    file: Path
    af: AgentFile

    def to_json(self) -> dict[str, Any]:
        agents = self.af.agents
        return {
            "file": str(self.file),
            "agents": [a.name for a in agents],
            "blocks": len(self.af.blocks or []),
            "tools": len(self.af.tools or []),
            "messages": sum(len(a.messages or []) for a in agents),
        }


def export_to(
    ws: Workspace, names: list[str], output: Path, *, force: bool = False, with_history: bool = False
) -> ExportSummary:
    """Write the agent file to `output` atomically; an existing file is replaced only with force."""
    af = export_agents(ws, names, with_history=with_history)
    if output.exists() and not force:
        raise Conflict(f"{output} already exists; use --force to replace it")
    atomic_write(output, dump_agent_file(af))
    return ExportSummary(output, af)
