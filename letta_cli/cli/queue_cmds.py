"""`agents queue`: list, show, retry or purge queued messages. A thin shell over letta_cli.app.queue_view."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from letta_cli.app.refs import short_id
from letta_cli.cli.common import confirm_or_refuse, lazy, out, print_json, table, workspace
from letta_cli.core.errors import UsageError
from letta_cli.core.text import flatten

queue_view = lazy("letta_cli.app.queue_view")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/observability.md).")]

queue_app = typer.Typer(
    name="queue",
    help="The message queue under .agents/queue/: list, show, retry or purge messages (default: list).",
    invoke_without_command=True,
)


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def print_queue(items: list[dict[str, Any]]) -> None:
    t = table("id", "folder", "attempts", "from → to", "age", "error")
    t.columns[0].no_wrap = True  # to paste into `agents queue show`
    for item in items:
        route = f"{item['sender'] or '?'} → {item['recipient'] or '?'}"
        t.add_row(
            short_id(item["id"]),
            item["folder"],
            str(item["attempts"] or 0),
            route,
            ago(item["age_seconds"]),
            flatten(item["error"], 60),
        )
    out().print(t)


@queue_app.callback()
def queue_main(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """The message queue: `agents queue` lists it."""
    if ctx.invoked_subcommand is None:
        queue_list(json_out=json_out)


@queue_app.command("list")
def queue_list(
    folder: Annotated[
        str | None, typer.Option("--folder", "-f", help="Only this folder: new, cur, dead or corrupt.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the messages in new/ (waiting), cur/ (being handled), dead/ (gave up) and corrupt/ (unreadable).

    Examples: agents queue list    agents queue list --folder dead --json | jq -r '.[].id'
    """
    folders = queue_view.FOLDERS
    if folder is not None and folder not in folders:
        raise UsageError(f"--folder {folder!r}: choose one of {', '.join(folders)}")
    items = queue_view.queue_items(workspace(), (folder,) if folder else folders)
    print_json(items) if json_out else print_queue(items)


@queue_app.command("show")
def queue_show(
    message_id: Annotated[str, typer.Argument(help="The message id (or 8+ characters of its beginning or end).")],
    json_out: JsonOpt = False,
) -> None:
    """Show one queued message (its JSON file) and, for a dead letter, why it died.

    Example: agents queue show 9fae00da
    """
    item = queue_view.queue_item(workspace(), message_id)
    if json_out:
        print_json(item)
        return
    console = out()
    console.print(f"# {item['path']} ({item['folder']}, {item['attempts'] or 0} attempts)", style="dim", markup=False)
    if item["error"]:
        console.print(f"error: {item['error']}", markup=False)
    console.print(json.dumps(item["message"], ensure_ascii=False, indent=2), markup=False, highlight=False)


@queue_app.command("retry")
def queue_retry(
    message_id: Annotated[str, typer.Argument(help="The dead letter's id (or 8+ characters of its beginning or end).")],
    json_out: JsonOpt = False,
) -> None:
    """Move a dead letter back to new/ with its attempts reset; the next scheduler runs it again.

    Example: agents queue retry 9fae00da && agents run
    """
    result = queue_view.requeue_dead(workspace(), message_id)
    print_json(result) if json_out else out().print(f"requeued {result['message_id']}")


@queue_app.command("purge")
def queue_purge(
    dead: Annotated[bool, typer.Option("--dead", help="Delete every dead letter (required).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete dead letters (and their error notes). Their turn records stay in .agents/turns/.

    Example: agents queue purge --dead --yes
    """
    if not dead:
        raise UsageError("say what to purge: --dead")
    ws = workspace()
    count = queue_view.dead_count(ws)
    if count:
        confirm_or_refuse(yes, f"Delete {count} dead letter(s)?")
    removed = queue_view.purge_dead(ws) if count else []
    print_json({"purged": removed}) if json_out else out().print(f"purged {len(removed)} dead letter(s)")


def register(app: typer.Typer) -> None:
    app.add_typer(queue_app)
