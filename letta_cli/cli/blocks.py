"""Memory blocks: list, show, create, set, append, attach, detach, delete, log; and `agents memory NAME`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from letta_cli.cli.common import out, print_json, read_message, table, warn, workspace
from letta_cli.core.errors import InvalidFile, UsageError
from letta_cli.core.models import Block
from letta_cli.core.names import check_name
from letta_cli.engine.prompt import render_memory
from letta_cli.store.blocks import BlockStore, EditRefused

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/memory.md).")]
AgentOpt = Annotated[
    str | None, typer.Option("--agent", "-a", help="The block this agent sees as LABEL (private or shared).")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Edit even a read-only block (the limit still holds).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", "-l", min=1, max=1_000_000, help="Limit in characters.")]
DescOpt = Annotated[str | None, typer.Option("--description", "-d", help="What the block is for (shown to models).")]

blocks_app = typer.Typer(
    name="blocks",
    help="Memory blocks: JSON files under .agents/blocks/, private to an agent or shared by many.",
    no_args_is_help=True,
)


def block_json(store: BlockStore, block: Block) -> dict:
    data = block.model_dump(mode="json")
    data["chars"] = len(block.value)
    data["shared"] = block.owner is None
    data["path"] = str(store.path(block.label, block.owner))
    return data


def target(store: BlockStore, label: str, agent: str | None) -> tuple[str | None, Block]:
    """(owner, block) for LABEL: the shared block, or with --agent the one that agent sees."""
    if agent is None:
        return None, store.get(label)
    definition = store.agents.get(agent)
    block = store.block_for(definition, label)
    return block.owner, block


def refused(exc: EditRefused, label: str) -> EditRefused:
    hint = {"limit": f"raise it with: agents blocks set {label} --limit N", "read_only": "use --force to override"}
    return EditRefused(f"{exc}; {hint[exc.kind]}", exc.kind)


def edit_value(
    label: str, agent: str | None, fn: Callable[[Block], Block | str], *, tool: str, force: bool
) -> tuple[BlockStore, Block]:
    store = BlockStore(workspace())
    owner, _ = target(store, label, agent)
    try:
        return store, store.edit(label, owner, fn, actor="cli", tool=tool, force=force)
    except EditRefused as exc:
        raise refused(exc, label) from None


def report(store: BlockStore, block: Block, verb: str, json_out: bool) -> None:
    if json_out:
        print_json(block_json(store, block))
    else:
        out().print(f"{verb} block {block.label} (revision {block.revision}, {len(block.value)}/{block.limit} chars)")


def register(app: typer.Typer) -> None:
    app.add_typer(blocks_app)

    @app.command("memory")
    def memory_cmd(name: str, json_out: JsonOpt = False) -> None:
        """Show what one agent sees of its memory: the blocks as rendered into its system prompt.

        Examples: agents memory researcher    agents memory researcher --json | jq '.blocks[].label'
        """
        store = BlockStore(workspace())
        blocks = store.for_agent(store.agents.get(name))
        rendered = render_memory(blocks)
        if json_out:
            print_json({"agent": name, "blocks": [block_json(store, b) for b in blocks], "rendered": rendered})
        elif rendered:
            sys.stdout.write(rendered + "\n")
        else:
            warn(f"agent {name} has no memory blocks")


@blocks_app.command("list")
def list_cmd(
    all_: Annotated[bool, typer.Option("--all", help="Also every agent's private blocks.")] = False,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Also this agent's private blocks.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List shared blocks (with the agents they are attached to); --all or --agent add private ones.

    Examples: agents blocks list    agents blocks list --all --json | jq -r '.[] | "\\(.label) \\(.chars)"'
    """
    store = BlockStore(workspace())
    blocks, errors = store.scan_shared()
    report_ = store.agents.load_all()
    attached = {b.label: [a.name for a in report_.agents if b.label in a.memory.shared] for b in blocks}
    owners = [a for a in report_.agents if all_ or a.name == agent]
    if agent is not None and not owners:
        store.agents.get(agent)  # a clear NotFound (or the agent file's own error)
    for owner in owners:
        for label in owner.memory.blocks:
            try:
                blocks.append(store.block_for(owner, label))
            except InvalidFile as exc:
                errors.append(str(exc))
    for line in errors:
        warn(f"error: {line}")
    if json_out:
        print_json([{**block_json(store, b), "attached": attached.get(b.label, [])} for b in blocks])
    else:
        t = table("label", "owner", "chars", "rev", "read-only", "attached to", "description")
        for b in blocks:
            t.add_row(
                b.label,
                b.owner or "(shared)",
                f"{len(b.value)}/{b.limit}",
                str(b.revision),
                "yes" if b.read_only else "",
                ",".join(attached.get(b.label, [])) if b.owner is None else "",
                b.description,
            )
        out().print(t)
    if errors:
        raise typer.Exit(InvalidFile.exit_code)


@blocks_app.command("show")
def show_cmd(label: str, agent: AgentOpt = None, json_out: JsonOpt = False) -> None:
    """Show one block: a header line, then its value.

    Examples: agents blocks show plan    agents blocks show persona --agent researcher --json | jq -r .value
    """
    store = BlockStore(workspace())
    owner, block = target(store, label, agent)
    if json_out:
        data = block_json(store, block)
        if owner is None:
            data["attached"] = store.attached_agents(label)
        print_json(data)
        return
    kind = "shared" if owner is None else f"private to {owner}"
    flags = ", read-only" if block.read_only else ""
    about = f" — {block.description}" if block.description else ""
    console = out()
    console.print(
        f"# {block.label} ({kind}, revision {block.revision}, {len(block.value)}/{block.limit} chars{flags}){about}",
        style="dim",
        markup=False,
    )
    console.print(block.value, markup=False)


@blocks_app.command("create")
def create_cmd(
    label: Annotated[str, typer.Argument(help="Block label: lowercase letters, digits, - and _.")],
    value: Annotated[str | None, typer.Option("--value", help="Initial value ('-': stdin).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the initial value from a file.")] = None,
    limit: LimitOpt = None,
    description: DescOpt = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Agents may read it but never edit it.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a shared block (attach it to agents with `agents blocks attach`).

    Examples:
      agents blocks create plan --value "1. research" --description "The team's plan" --limit 2000
      agents blocks create rules --file rules.md --read-only && agents blocks attach rules alice bob
    """
    if value is not None and file is not None:
        raise UsageError("give --value or --file, not both")
    if value == "-":
        value = read_message("-", "block value")
    if file is not None:
        try:
            value = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    check_name(label, "block label")
    fields = {k: v for k, v in {"limit": limit, "description": description}.items() if v is not None}
    store = BlockStore(workspace())
    block = Block(label=label, value=value or "", read_only=read_only, **fields)
    try:
        block = store.create(block)
    except EditRefused as exc:
        raise UsageError(f"{exc}; give a larger --limit") from None
    report(store, block, "Created", json_out)


@blocks_app.command("set")
def set_cmd(
    label: str,
    value: Annotated[str | None, typer.Argument(help="The new value ('-' or none: stdin).")] = None,
    agent: AgentOpt = None,
    limit: LimitOpt = None,
    description: DescOpt = None,
    read_only: Annotated[
        bool | None, typer.Option("--read-only/--writable", help="Make the block read-only for agents, or not.")
    ] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Replace a block's value, and/or change its limit, description or read-only flag.

    Examples:
      agents blocks set plan "1. research 2. write"
      git log -1 --format=%s | agents blocks set status -
      agents blocks set persona --agent researcher --limit 8000

    Changing only the settings (--limit, --description, --read-only/--writable) needs no --force.
    """
    settings = {"limit": limit, "description": description, "read_only": read_only}
    settings = {k: v for k, v in settings.items() if v is not None}
    if value == "-" or (value is None and not settings):
        value = read_message(value, "block value")

    def apply(block: Block) -> Block:
        return block.model_copy(update={**settings, **({} if value is None else {"value": value})})

    store, block = edit_value(label, agent, apply, tool="set", force=force or value is None)
    report(store, block, "Set", json_out)


@blocks_app.command("append")
def append_cmd(
    label: str,
    text: Annotated[str | None, typer.Argument(help="Text to append on a new line ('-' or none: stdin).")] = None,
    agent: AgentOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Append a line to a block (as core_memory_append does).

    Examples: agents blocks append log "deployed v2"    date | agents blocks append log -
    """
    line = read_message(text, "text")

    def apply(block: Block) -> str:
        return f"{block.value}\n{line}" if block.value else line

    store, block = edit_value(label, agent, apply, tool="append", force=force)
    report(store, block, "Appended to", json_out)


@blocks_app.command("attach")
def attach_cmd(
    label: str,
    agents: Annotated[list[str], typer.Argument(help="Agents to attach the shared block to.")],
    json_out: JsonOpt = False,
) -> None:
    """Attach a shared block to agents (adds it to memory.shared in each agent file).

    Example: agents blocks attach plan alice bob
    """
    changed = BlockStore(workspace()).attach(label, agents)
    if json_out:
        print_json({"label": label, "attached": changed, "unchanged": [a for a in agents if a not in changed]})
    else:
        out().print(f"Attached {label} to {', '.join(changed)}" if changed else f"{label} was already attached")


@blocks_app.command("detach")
def detach_cmd(
    label: str,
    agents: Annotated[list[str], typer.Argument(help="Agents to detach the shared block from.")],
    json_out: JsonOpt = False,
) -> None:
    """Detach a shared block from agents (the block itself is kept).

    Example: agents blocks detach plan bob
    """
    changed = BlockStore(workspace()).detach(label, agents)
    if json_out:
        print_json({"label": label, "detached": changed, "unchanged": [a for a in agents if a not in changed]})
    else:
        out().print(f"Detached {label} from {', '.join(changed)}" if changed else f"{label} was not attached")


@blocks_app.command("delete")
def delete_cmd(
    label: str,
    force: Annotated[bool, typer.Option("--force", help="Delete even while agents list it.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete a shared block and its change log; refused while agents list it, unless --force.

    Example: agents blocks detach scratch alice && agents blocks delete scratch
    """
    still = BlockStore(workspace()).delete(label, force=force)
    if still:
        warn(f"{', '.join(still)} still list {label}: their turns fail until it is re-created or detached")
    if json_out:
        print_json({"label": label, "deleted": True, "still_listed_by": still})
    else:
        out().print(f"Deleted block {label}")


@blocks_app.command("log")
def log_cmd(label: str, agent: AgentOpt = None, json_out: JsonOpt = False) -> None:
    """Show a block's change log: when, who, which tool, size before and after.

    Examples: agents blocks log plan    agents blocks log persona --agent researcher --json
    """
    store = BlockStore(workspace())
    owner, _ = target(store, label, agent)
    entries = store.log(label, owner)
    if json_out:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    t = table("at", "actor", "tool", "chars", "rev")
    for e in entries:
        t.add_row(e.at.isoformat(timespec="seconds"), e.actor, e.tool, f"{e.before} -> {e.after}", str(e.revision))
    out().print(t)
