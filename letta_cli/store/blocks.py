"""Memory blocks: JSON files under .agents/blocks/, private to one agent or shared by many, and Letta's
memory tools that edit them.

Every change goes through BlockStore.edit, which holds the block's lock while it re-reads the file, applies
the change, checks read-only and the limit, and writes the new file atomically. The CLI and the agents'
tools share that one path, so they obey the same rules and concurrent processes never lose an update.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from letta_cli.core.config import describe_validation
from letta_cli.core.errors import Conflict, InvalidFile, NotFound, ToolError
from letta_cli.core.faults import crashpoint
from letta_cli.core.models import AgentDef, Block, BlockEdit
from letta_cli.core.names import check_name
from letta_cli.store.agents import AgentStore
from letta_cli.store.fsio import append_line, atomic_write, fsync_dir, locked, read_json_lines
from letta_cli.store.workspace import Workspace

_MESSAGE_ID = re.compile(r"[0-9a-f-]{36}")
MAX_EDIT_KEYS = 10_000  # a safety cap only: keys are dropped once their turn is committed (see _live_keys)


class EditRefused(Conflict, ToolError):
    """An edit the block's rules forbid: one error line for a person, a tool result for a model."""

    def __init__(self, message: str, kind: Literal["read_only", "limit"]):
        super().__init__(message)
        self.kind = kind


class MissingSharedBlock(NotFound):
    """An agent lists a shared block that does not exist."""

    def __init__(self, agent: str, label: str):
        super().__init__(f"agent {agent!r} lists shared block {label!r}, which does not exist: create it or detach it")
        self.agent, self.label = agent, label


class BlockAttached(Conflict):
    """Deleting a shared block that agents still list."""

    def __init__(self, label: str, agents: list[str]):
        super().__init__(f"shared block {label!r} is attached to {', '.join(agents)}; detach it first")
        self.label, self.agents = label, agents


# ------------------------------------------------------------------------------------------------- store


class BlockStore:
    """Blocks on disk: .agents/blocks/shared/<label>.json and .agents/blocks/private/<agent>/<label>.json."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.agents = AgentStore(ws)

    # --- paths -------------------------------------------------------------------------------------

    def path(self, label: str, owner: str | None = None) -> Path:
        check_name(label, "block label")
        if owner is None:
            return self.ws.blocks_dir / "shared" / f"{label}.json"
        return self.ws.blocks_dir / "private" / check_name(owner, "agent name") / f"{label}.json"

    def log_path(self, label: str, owner: str | None = None) -> Path:
        return self.path(label, owner).with_name(f"{label}.log.jsonl")

    def _lock_path(self, label: str, owner: str | None) -> Path:
        # never deleted: removing a lock file another process holds would let two writers in
        return self.path(label, owner).with_name(f".{label}.lock")

    # --- reading -----------------------------------------------------------------------------------

    def exists(self, label: str, owner: str | None = None) -> bool:
        return self.path(label, owner).is_file()

    def get(self, label: str, owner: str | None = None) -> Block:
        path = self.path(label, owner)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(self._missing(label, owner)) from None
        except OSError as exc:
            raise InvalidFile(f"{path}: cannot read: {exc.strerror}") from None
        return _parse(path, raw, label, owner)

    def _missing(self, label: str, owner: str | None) -> str:
        if owner is not None:
            return f"agent {owner!r} has no private block {label!r}"
        close = difflib.get_close_matches(label, self.shared_labels(), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return f"no shared block {label!r}{hint}"

    def shared_labels(self) -> list[str]:
        try:
            entries = os.listdir(self.ws.blocks_dir / "shared")
        except FileNotFoundError:
            return []
        return sorted(e[:-5] for e in entries if e.endswith(".json") and not e.startswith("."))

    def scan_shared(self) -> tuple[list[Block], list[str]]:
        """Every shared block, and one error line per file that does not parse (for listings)."""
        blocks, errors = [], []
        for label in self.shared_labels():
            try:
                blocks.append(self.get(label))
            except InvalidFile as exc:
                errors.append(str(exc))
            except NotFound:  # deleted while we listed
                pass
        return blocks, errors

    def list_shared(self) -> list[Block]:
        blocks, errors = self.scan_shared()
        if errors:
            raise InvalidFile(errors[0])
        return blocks

    def attached_agents(self, label: str) -> list[str]:
        """Agents whose definition lists the shared block `label` (broken agent files are skipped)."""
        return [a.name for a in self.agents.load_all().agents if label in a.memory.shared]

    def log(self, label: str, owner: str | None = None) -> list[BlockEdit]:
        entries = []
        for obj in read_json_lines(self.log_path(label, owner)):
            with contextlib.suppress(ValidationError):
                entries.append(BlockEdit.model_validate(obj))
        return entries

    # --- what an agent sees ------------------------------------------------------------------------

    def locate(self, agent: AgentDef, label: str) -> str | None:
        """The owner of the block `label` as `agent` sees it: the agent's name (private) or None (shared)."""
        if label in agent.memory.blocks:
            return agent.name
        if label in agent.memory.shared:
            return None
        labels = ", ".join([*agent.memory.blocks, *agent.memory.shared]) or "none"
        raise NotFound(f"agent {agent.name!r} has no memory block labelled {label!r} (its blocks: {labels})")

    def for_agent(self, agent: AgentDef) -> list[Block]:
        """The agent's private blocks (created from the definition on first use), then its shared ones."""
        for label in agent.memory.shared:
            if label in agent.memory.blocks:
                raise InvalidFile(
                    f"agent {agent.name!r} would see two blocks labelled {label!r}: its private block "
                    f"([memory.blocks.{label}] in {self.ws.agent_file(agent.name)}) and the shared block "
                    f"({self.path(label)}); rename one or detach the shared one"
                )
        blocks = [self._private(agent, label) for label in agent.memory.blocks]
        for label in agent.memory.shared:
            try:
                blocks.append(self.get(label))
            except NotFound:
                raise MissingSharedBlock(agent.name, label) from None
        return blocks

    def block_for(self, agent: AgentDef, label: str) -> Block:
        """The one block labelled `label` that `agent` sees."""
        owner = self.locate(agent, label)
        return self.get(label) if owner is None else self._private(agent, label)

    def _private(self, agent: AgentDef, label: str) -> Block:
        path = self.path(label, agent.name)
        if path.is_file():
            return self.get(label, agent.name)
        declared = agent.memory.blocks.get(label)
        if declared is None:
            raise NotFound(self._missing(label, agent.name))
        block = Block(label=label, owner=agent.name, **declared.model_dump())
        self.ws.ensure_state()  # before the lock file creates .agents/ without its .gitignore
        with locked(self._lock_path(label, agent.name)):
            if path.is_file():  # another process got there first
                return self.get(label, agent.name)
            self._store_new(block, actor=agent.name)
        return block

    # --- writing -----------------------------------------------------------------------------------

    def create(self, block: Block, *, actor: str = "cli") -> Block:
        """A new block: shared when block.owner is None, else the owner agent's private block."""
        path = self.path(block.label, block.owner)
        _check_limit(block, len(block.value))
        self.ws.ensure_state()
        with locked(self._lock_path(block.label, block.owner)):
            if path.exists():
                kind = "shared block" if block.owner is None else f"private block of agent {block.owner!r},"
                raise Conflict(f"{kind} {block.label!r} already exists ({path})")
            self._store_new(block, actor=actor)
        return block

    def _store_new(self, block: Block, *, actor: str) -> None:
        path = self.path(block.label, block.owner)
        atomic_write(path, _dump(block))
        entry = BlockEdit(actor=actor, tool="create", before=0, after=len(block.value), revision=block.revision)
        append_line(self.log_path(block.label, block.owner), entry.model_dump_json())

    def edit(
        self,
        label: str,
        owner: str | None,
        fn: Callable[[Block], Block | str],
        *,
        actor: str,
        tool: str,
        edit_key: str | None = None,
        force: bool = False,
    ) -> Block:
        """Apply fn to the block's current value under its lock; fn returns the new value or a new Block.

        A known edit_key makes this a no-op that returns the current block (a replayed tool call).
        force=True lets a person edit a read-only block; the limit always holds.
        """
        path = self.path(label, owner)
        if owner is not None and not path.is_file():
            self._private(self.agents.get(owner), label)
        with locked(self._lock_path(label, owner)):
            current = self.get(label, owner)
            if edit_key is not None and edit_key in current.recent_edit_keys:
                self._restore_log_entry(label, owner, current, edit_key, actor, tool)
                return current
            if current.read_only and not force:
                raise EditRefused(f"block {label!r} is read-only and cannot be edited", "read_only")
            new = _merge(current, fn(current.model_copy(deep=True)))
            _check_limit(new, len(current.value), current.limit)
            keys = self._live_keys(current.recent_edit_keys) + ([edit_key] if edit_key is not None else [])
            new = new.model_copy(update={"revision": current.revision + 1, "recent_edit_keys": keys})
            atomic_write(path, _dump(new))
            crashpoint("after_block_write")
            entry = BlockEdit(
                actor=actor,
                tool=tool,
                before=len(current.value),
                after=len(new.value),
                revision=new.revision,
                edit_key=edit_key,
            )
            append_line(self.log_path(label, owner), entry.model_dump_json())
        return new

    def _live_keys(self, keys: list[str]) -> list[str]:
        """The edit keys a replay may still need: those of turns not committed yet. A key names its turn
        (`<message id>:<n>:<hash>`); once that turn's record exists it is never run again, so its keys go.
        Keys are kept per turn, not as the last N edits: a turn with many edits, or a block many other turns
        edit between a crash and the replay, still recognises every edit of its own."""
        committed: dict[str, bool] = {}
        live = []
        for key in keys:
            turn = key.partition(":")[0]
            if turn not in committed:
                is_id = _MESSAGE_ID.fullmatch(turn) is not None
                committed[turn] = is_id and (self.ws.turns_dir / f"{turn}.json").exists()
            if not committed[turn]:
                live.append(key)
        return live[-MAX_EDIT_KEYS:]

    def _restore_log_entry(self, label: str, owner: str | None, block: Block, key: str, actor: str, tool: str) -> None:
        """A crash between a block write and its log line leaves the log short: add the line on replay."""
        try:
            if json.dumps(key).encode() in self.log_path(label, owner).read_bytes():
                return
        except FileNotFoundError:
            pass
        size = len(block.value)
        entry = BlockEdit(actor=actor, tool=tool, before=size, after=size, revision=block.revision, edit_key=key)
        append_line(self.log_path(label, owner), entry.model_dump_json())

    def delete(self, label: str, owner: str | None = None, *, force: bool = False) -> list[str]:
        """Delete a block and its change log. A shared block still attached to agents needs force=True;
        the agents that still list it are returned (their turns fail until it is re-created or detached).
        A deleted private block is re-created from the agent's definition on its next use."""
        path = self.path(label, owner)
        if not path.is_file():
            raise NotFound(self._missing(label, owner))
        attached = self.attached_agents(label) if owner is None else []
        if attached and not force:
            raise BlockAttached(label, attached)
        with locked(self._lock_path(label, owner)):
            if not path.is_file():
                raise NotFound(self._missing(label, owner))
            path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self.log_path(label, owner).unlink()
            fsync_dir(path.parent)
        return attached

    # --- attaching shared blocks to agents ---------------------------------------------------------

    def attach(self, label: str, agent_names: list[str]) -> list[str]:
        """List the shared block in each agent's memory.shared; returns the agents that changed.
        Checks every agent before changing any, all under the agents lock (one read-modify-write)."""
        self.get(label)
        with self.agents.locked():
            agents = [self.agents.get(name, fresh=True) for name in dict.fromkeys(agent_names)]
            for agent in agents:
                if label in agent.memory.blocks:
                    raise Conflict(
                        f"agent {agent.name!r} has a private block labelled {label!r}; it cannot also see the "
                        f"shared block {label!r} (an agent sees one block per label)"
                    )
            changed = [a for a in agents if label not in a.memory.shared]
            for agent in changed:
                self._save_shared(agent, [*agent.memory.shared, label])
        return [a.name for a in changed]

    def detach(self, label: str, agent_names: list[str]) -> list[str]:
        """Remove the label from each agent's memory.shared; returns the agents that changed."""
        check_name(label, "block label")
        with self.agents.locked():
            agents = [self.agents.get(name, fresh=True) for name in dict.fromkeys(agent_names)]
            changed = [a for a in agents if label in a.memory.shared]
            for agent in changed:
                self._save_shared(agent, [s for s in agent.memory.shared if s != label])
        return [a.name for a in changed]

    def _save_shared(self, agent: AgentDef, shared: list[str]) -> None:
        memory = agent.memory.model_copy(update={"shared": list(dict.fromkeys(shared))})
        self.agents.save(agent.model_copy(update={"memory": memory}), overwrite=True)


def _parse(path: Path, raw: bytes, label: str, owner: str | None) -> Block:
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidFile(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidFile(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidFile(f"{path}: invalid JSON: nested too deeply") from None
    try:
        block = Block.model_validate(data)
    except ValidationError as exc:
        raise InvalidFile(describe_validation(path, exc)) from None
    if block.label != label:
        raise InvalidFile(f"{path}: label {block.label!r} does not match the file name {label!r}")
    if block.owner != owner:
        where = "shared/" if owner is None else f"private/{owner}/"
        raise InvalidFile(f"{path}: owner {block.owner!r} does not match its folder {where}")
    return block


def _dump(block: Block) -> str:
    return block.model_dump_json(indent=2) + "\n"


def _merge(current: Block, result: Block | str) -> Block:
    if isinstance(result, str):
        return current.model_copy(update={"value": result})
    if result.label != current.label or result.owner != current.owner:
        raise ValueError("an edit cannot change a block's label or owner")
    return Block.model_validate(result.model_dump())


def _check_limit(block: Block, before: int, old_limit: int | None = None) -> None:
    """Refuse a block longer than its limit, except an edit that shrinks an (already) oversized block."""
    chars = len(block.value)
    if chars <= block.limit:
        return
    if old_limit == block.limit and chars < before:
        return
    over = chars - block.limit
    raise EditRefused(f"block {block.label!r} would be {chars} chars, {over} over its limit of {block.limit}", "limit")
