"""Memory blocks: list, show, create, set, append, attach, detach, delete, log; and `agents memory NAME`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from letta_cli.app import blocks as app_blocks
from letta_cli.app.agents import read_text_file
from letta_cli.app.blocks import BlockAttached, EditRefused, MissingSharedBlock
from letta_cli.cli.common import out, print_json, read_message, table, warn, workspace, write_text
from letta_cli.core.errors import Conflict, InvalidFile, NotFound, UsageError
from letta_cli.core.models import Block

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


@contextlib.contextmanager
def hints(label: str = "") -> Iterator[None]:
    """The library says what is wrong; this adds which command or option fixes it."""
    try:
        yield
    except EditRefused as exc:
        hint = {"limit": f"raise it with: agents blocks set {label} --limit N", "read_only": "use --force to override"}
        raise EditRefused(f"{exc}; {hint[exc.kind]}", exc.kind) from None
    except MissingSharedBlock as exc:
        raise NotFound(
            f"agent {exc.agent!r} lists shared block {exc.label!r}, which does not exist: create it "
            f"(agents blocks create {exc.label}) or detach it (agents blocks detach {exc.label} {exc.agent})"
        ) from None
    except BlockAttached as exc:
        raise Conflict(f"{exc} (agents blocks detach {label} {' '.join(exc.agents)}) or use --force") from None


def report(block: Block, verb: str, json_out: bool) -> None:
    if json_out:
        print_json(app_blocks.block_json(workspace(), block))
    else:
        out().print(f"{verb} block {block.label} (revision {block.revision}, {len(block.value)}/{block.limit} chars)")


def register(app: typer.Typer) -> None:
    app.add_typer(blocks_app)

    @app.command("memory")
    def memory_cmd(name: str, json_out: JsonOpt = False) -> None:
        """Show what one agent sees of its memory: the blocks as rendered into its system prompt.

        Examples: agents memory researcher    agents memory researcher --json | jq '.blocks[].label'
        """
        ws = workspace()
        with hints():
            blocks, rendered = app_blocks.memory(ws, name)
        if json_out:
            print_json({"agent": name, "blocks": [app_blocks.block_json(ws, b) for b in blocks], "rendered": rendered})
        elif rendered:
            write_text(rendered)
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
    rows, errors = app_blocks.list_blocks(workspace(), every_agent=all_, agent=agent)
    for line in errors:
        warn(f"error: {line}")
    if json_out:
        print_json(rows)
    else:
        t = table("label", "owner", "chars", "rev", "read-only", "attached to", "description")
        for b in rows:
            t.add_row(
                b["label"],
                b["owner"] or "(shared)",
                f"{b['chars']}/{b['limit']}",
                str(b["revision"]),
                "yes" if b["read_only"] else "",
                ",".join(b["attached"]) if b["shared"] else "",
                b["description"],
            )
        out().print(t)
    if errors:
        raise typer.Exit(InvalidFile.exit_code)


@blocks_app.command("show")
def show_cmd(label: str, agent: AgentOpt = None, json_out: JsonOpt = False) -> None:
    """Show one block: a header line, then its value.

    Examples: agents blocks show plan    agents blocks show persona --agent researcher --json | jq -r .value
    """
    ws = workspace()
    block = app_blocks.get(ws, label, agent)
    if json_out:
        data = app_blocks.block_json(ws, block)
        if block.owner is None:
            data["attached"] = app_blocks.attached_agents(ws, label)
        print_json(data)
        return
    kind = "shared" if block.owner is None else f"private to {block.owner}"
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
        value = read_text_file(file)
    try:
        block = app_blocks.create(
            workspace(), label, value or "", limit=limit, description=description, read_only=read_only
        )
    except EditRefused as exc:
        raise UsageError(f"{exc}; give a larger --limit") from None
    report(block, "Created", json_out)


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
    if value == "-" or (value is None and limit is None and description is None and read_only is None):
        value = read_message(value, "block value")
    with hints(label):
        block = app_blocks.set_block(
            workspace(),
            label,
            value,
            agent=agent,
            limit=limit,
            description=description,
            read_only=read_only,
            force=force,
        )
    report(block, "Set", json_out)


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
    with hints(label):
        block = app_blocks.append(workspace(), label, line, agent=agent, force=force)
    report(block, "Appended to", json_out)


@blocks_app.command("attach")
def attach_cmd(
    label: str,
    agents: Annotated[list[str], typer.Argument(help="Agents to attach the shared block to.")],
    json_out: JsonOpt = False,
) -> None:
    """Attach a shared block to agents (adds it to memory.shared in each agent file).

    Example: agents blocks attach plan alice bob
    """
    changed = app_blocks.attach(workspace(), label, agents)
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
    changed = app_blocks.detach(workspace(), label, agents)
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
    with hints(label):
        still = app_blocks.delete(workspace(), label, force=force)
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
    entries = app_blocks.log(workspace(), label, agent)
    if json_out:
        print_json([e.model_dump(mode="json") for e in entries])
        return
    t = table("at", "actor", "tool", "chars", "rev")
    for e in entries:
        t.add_row(e.at.isoformat(timespec="seconds"), e.actor, e.tool, f"{e.before} -> {e.after}", str(e.revision))
    out().print(t)
