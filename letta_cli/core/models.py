"""Pydantic models of every on-disk format. Each carries a `version` so files can evolve."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from letta_cli.core.config import Limits
from letta_cli.core.ids import new_id, now
from letta_cli.core.names import NAME_RULE, is_valid_name, reserved_reason
from letta_cli.core.tool_specs import CommandToolSpec, check_tool_table

USER = "user"  # the sender name of messages typed in a shell


def _name(value: str, what: str) -> str:
    if not is_valid_name(value):
        raise ValueError(f"invalid {what} {value!r}: use {NAME_RULE}")
    return value


# ---------------------------------------------------------------------------------------------- agents


class PrivateBlock(BaseModel):
    """A block only this agent sees, declared with its initial value in the agent file."""

    model_config = ConfigDict(extra="forbid")

    value: str = ""
    limit: int = Field(5000, ge=1, le=1_000_000)
    description: str = ""
    read_only: bool = False


class AgentMemory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    blocks: dict[str, PrivateBlock] = Field(default_factory=dict)
    shared: list[str] = Field(default_factory=list)

    @field_validator("blocks")
    @classmethod
    def _labels(cls, value: dict[str, PrivateBlock]) -> dict[str, PrivateBlock]:
        for label in value:
            _name(label, "block label")
        return value

    @field_validator("shared")
    @classmethod
    def _shared(cls, value: list[str]) -> list[str]:
        for label in value:
            _name(label, "block label")
        if len(set(value)) != len(value):
            raise ValueError("a shared block is listed twice")
        return value


class ToolRules(BaseModel):
    """Letta's tool rules: a tool forced as the first call of a turn, and tools that end the turn."""

    model_config = ConfigDict(extra="forbid")

    first: str | None = None
    terminal: list[str] = Field(default_factory=lambda: ["send_message"])


class AgentLimits(BaseModel):
    """Per-agent overrides of the workspace limits; unset fields inherit."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_steps: int | None = Field(None, ge=1, le=1000)
    history_messages: int | None = Field(None, ge=0)
    history_chars: int | None = Field(None, ge=0)
    wait_timeout: float | None = Field(None, gt=0, le=86_400)
    max_tokens: int | None = Field(None, ge=1)


class AgentDef(BaseModel):
    """agents.d/<name>.toml"""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    name: str
    description: str = Field("", max_length=10_000)
    model: str | None = Field(None, max_length=200)
    base_url: str | None = Field(None, max_length=2000)
    api_key_env: str | None = Field(None, max_length=200)
    system: str = Field("You are a helpful agent.", max_length=200_000)
    tags: list[str] = Field(default_factory=list)
    tools: list[str] | None = None  # None: every built-in tool
    disabled_tools: list[str] = Field(default_factory=list)  # imported tools we cannot run
    command_tools: dict[str, CommandToolSpec] = Field(default_factory=dict)  # offered only if `tools` names them
    tool_rules: ToolRules = Field(default_factory=ToolRules)
    memory: AgentMemory = Field(default_factory=AgentMemory)
    limits: AgentLimits = Field(default_factory=AgentLimits)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        reason = reserved_reason(_name(value, "agent name"))
        if reason is not None:
            raise ValueError(f"{reason}; rename the agent (its file too)")
        return value

    _tool_names = field_validator("command_tools")(check_tool_table)

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            _name(tag, "tag")
        return list(dict.fromkeys(value))

    def effective_limits(self, base: Limits) -> Limits:
        overrides = self.limits.model_dump(exclude_none=True)
        return base.model_copy(update=overrides)

    def has_tags(self, tags: list[str]) -> bool:
        """Letta's match_all; an empty list matches nothing, never everyone."""
        return bool(tags) and set(tags) <= set(self.tags)


# ---------------------------------------------------------------------------------------------- blocks


class BlockEdit(BaseModel):
    """An entry of a block's change log (.agents/blocks/<...>.log.jsonl)."""

    version: int = 1
    at: datetime = Field(default_factory=now)
    actor: str  # agent name, or "cli"
    tool: str  # memory tool name, or CLI verb
    before: int  # characters before
    after: int  # characters after
    revision: int
    edit_key: str | None = None


class Block(BaseModel):
    """.agents/blocks/shared/<label>.json or .agents/blocks/private/<agent>/<label>.json"""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    label: str
    value: str = ""
    limit: int = Field(5000, ge=1, le=1_000_000)
    description: str = ""
    read_only: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    revision: int = 0
    owner: str | None = None  # agent name for a private block, None for a shared one
    recent_edit_keys: list[str] = Field(default_factory=list)  # makes a replayed tool call a no-op

    @field_validator("label")
    @classmethod
    def _valid_label(cls, value: str) -> str:
        return _name(value, "block label")


# -------------------------------------------------------------------------------------------- messages

MessageKind = Literal["user", "async", "request", "broadcast"]


class Message(BaseModel):
    """One immutable file in .agents/queue/{new,cur,dead}/."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    id: str = Field(default_factory=new_id)
    sender: str = USER
    recipient: str
    body: str
    kind: MessageKind = "user"
    chain_id: str = ""  # the root message's id; "" means "this message is the root"
    hop: int = 0
    reply_to: str | None = None  # request/broadcast: the message whose turn waits for this one's reply
    parent_id: str | None = None  # the message whose turn sent this one (None: sent from a shell)
    force_tool: str | None = None  # a tool the model must call first in this turn (like tool_rules.first)
    created_at: datetime = Field(default_factory=now)
    origin_pid: int = Field(default_factory=os.getpid)

    def model_post_init(self, _context: Any) -> None:
        if not self.chain_id:
            self.chain_id = self.id


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.model_calls += other.model_calls


TurnStatus = Literal["ok", "error", "dead", "stopped"]


class TurnRecord(BaseModel):
    """.agents/turns/<message_id>.json — the commit record of one handled message, and its result.

    Written atomically once the turn is complete; its existence is what makes a replayed message a no-op.
    """

    version: int = 1
    message_id: str
    agent: str
    sender: str
    chain_id: str
    status: TurnStatus
    reply: list[str] = Field(default_factory=list)  # every assistant message of the turn
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    started_at: datetime = Field(default_factory=now)
    ended_at: datetime = Field(default_factory=now)
    attempts: int = 1
    history: list[dict[str, Any]] = Field(default_factory=list)  # entries to append to the history
    outbox: list[Message] = Field(default_factory=list)  # async messages to publish after commit


class HistoryEntry(BaseModel):
    """One line of .agents/history/<agent>.jsonl (chat-completions message plus bookkeeping)."""

    version: int = 1
    turn_id: str  # the inbound message id
    seq: int
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    sender: str | None = None
    created_at: datetime = Field(default_factory=now)

    def to_chat(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = self.tool_calls
        if self.role == "tool":
            msg["tool_call_id"] = self.tool_call_id
        return msg
