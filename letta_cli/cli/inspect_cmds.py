"""Seeing what happened: history, trace, usage, queue, status. Thin shells over letta_cli.app.inspect."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from letta_cli.cli.common import err_console, lazy, out, print_json, table, workspace
from letta_cli.core.errors import NotFound, UsageError
from letta_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from rich.tree import Tree

observe = lazy("letta_cli.app.inspect")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/observability.md).")]
FOLLOW_POLL_SECONDS = 0.2

queue_app = typer.Typer(
    name="queue",
    help="The message queue under .agents/queue/: list, show, retry or purge messages (default: list).",
    invoke_without_command=True,
)


# ------------------------------------------------------------------------------------------------ helpers


short = observe.short_id


def local_time(ts: str | None, compact: bool = False) -> str:
    """A trace time in local time; compact: the time alone when it is today."""
    if not ts:
        return "-"
    try:
        when = datetime.fromisoformat(ts).astimezone()
    except ValueError:
        return ts
    if compact:
        return when.strftime("%H:%M:%S" if when.date() == datetime.now().astimezone().date() else "%m-%d %H:%M")
    return when.strftime("%Y-%m-%d %H:%M:%S")


def seconds(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def print_turns(lines: list[str], json_out: bool) -> None:
    if json_out:
        for line in lines:
            sys.stdout.write(line + "\n")
    else:
        console = out()
        for turn_id, entries in observe.group_turns(lines):
            console.print(
                f"── {local_time(entries[0].get('created_at'))}  turn {short(turn_id)}", style="dim", markup=False
            )
            for style, text in observe.render_turn(entries):
                console.print(text, style=style or None, markup=False, highlight=False)
    sys.stdout.flush()


class Stop:
    """SIGTERM (and Ctrl-C) end a --follow loop cleanly, with exit status 0."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGTERM, self.stop)

    def stop(self, *_: object) -> None:
        self.stopped = True


def follow(ws: Workspace, name: str, last: int | None, json_out: bool) -> None:
    follower = observe.Follower(ws.history_file(name))
    lines = follower.read()
    if last is not None:
        keep = {turn_id for turn_id, _ in observe.group_turns(lines)[-last:]} if last > 0 else set()
        lines = [line for line in lines if json.loads(line).get("turn_id") in keep]
    print_turns(lines, json_out)
    stop = Stop()
    try:
        while not stop.stopped:
            time.sleep(FOLLOW_POLL_SECONDS)
            new = follower.read()
            if new:
                print_turns(new, json_out)
    except KeyboardInterrupt:
        pass


# -------------------------------------------------------------------------------------------------- trace


def turn_label(turn: dict | None) -> str:
    if turn is None:
        return "queued (no turn yet)"
    if turn["status"] == "running":
        return f"turn running ({turn['agent']}, attempt {turn['attempts']})"
    parts = [
        f"turn {turn['status']}",
        f"{turn['model_calls']} model call{'s' if turn['model_calls'] != 1 else ''}",
        f"{turn['prompt_tokens']}+{turn['completion_tokens']} tokens",
        seconds(turn["duration_ms"]),
    ]
    if turn["attempts"] > 1:
        parts.append(f"attempt {turn['attempts']}")
    return " · ".join(parts)


def add_message(tree: Tree, node: dict) -> None:
    from rich.text import Text

    label = Text()
    label.append(f"{node['sender']} → {node['recipient']}", style="bold")
    label.append(f"  {node['kind']}, hop {node['hop']}  ", style="cyan")
    label.append(observe.one_line(node["body"], 70))
    label.append(f"  {short(node['message_id'])}", style="dim")
    branch = tree.add(label)
    turn = node["turn"]
    status_style = {"ok": "green", "running": "yellow"}.get(turn["status"] if turn else "", "red" if turn else "dim")
    sub = branch.add(Text(turn_label(turn), style=status_style))
    if turn is None:
        return
    for retry in turn["retries"]:
        sub.add(Text(f"attempt {retry['attempt']} failed: {observe.one_line(retry['error'], 100)}", style="red"))
    for call in turn["tool_calls"]:
        sub.add(
            Text(
                observe.tool_line(call["tool"], call["arguments"], call["result"], bool(call["error"])),
                style="dim",
                overflow="fold",
            )
        )
    for child in node["children"]:
        add_message(sub, child)
    for reply in turn["reply"]:
        sub.add(Text(f"reply: {observe.one_line(reply, 200)}"))
    if turn["error"]:
        sub.add(Text(f"error: {turn['error']}", style="red"))


# ------------------------------------------------------------------------------------------------- render


def cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def print_usage(report: dict) -> None:
    console = out()
    t = table("agent", "calls", "prompt", "completion", "total", "cost")
    for row in report["agents"]:
        t.add_row(
            str(row["agent"]),
            str(row["model_calls"]),
            f"{row['prompt_tokens']:,}",
            f"{row['completion_tokens']:,}",
            f"{row['total_tokens']:,}",
            cost(row["cost_usd"]),
        )
    console.print(t)
    budgets = report["budgets"]
    chain_budget = budgets["chain_token_budget"]
    t = table("chain", "started", "agents", "calls", "tokens", "cost", "budget")
    for row in report["chains"]:
        used = f"{100 * row['total_tokens'] / chain_budget:.0f}%" if chain_budget else "-"
        t.add_row(
            short(row["chain_id"]),
            local_time(row["started_at"], compact=True),
            ",".join(row["agents"]),
            str(row["model_calls"]),
            f"{row['total_tokens']:,}",
            cost(row["cost_usd"]),
            used,
        )
    console.print()
    console.print(t)
    total = report["total"]
    console.print()
    console.print(
        f"total: {total['model_calls']} model calls, {total['prompt_tokens']:,} prompt + {total['completion_tokens']:,} "
        f"completion = {total['total_tokens']:,} tokens, cost {cost(total['cost_usd'])}",
        markup=False,
    )
    unpriced = [m["model"] for m in report["models"] if not m["priced"]]
    if unpriced:
        console.print(
            f"no price configured for: {', '.join(map(str, unpriced))} ([prices.<model>] in agents.toml)",
            style="dim",
            markup=False,
        )
    console.print(
        f"budgets: chain {budgets['chain_token_budget'] or 'none'}, agent per chain {budgets['agent_token_budget'] or 'none'} "
        "([limits] chain_token_budget, agent_token_budget)",
        style="dim",
        markup=False,
    )


def print_queue(items: list[dict]) -> None:
    t = table("id", "folder", "attempts", "from → to", "age", "error")
    t.columns[0].no_wrap = True  # to paste into `agents queue show`
    for item in items:
        route = f"{item['sender'] or '?'} → {item['recipient'] or '?'}"
        t.add_row(
            short(item["id"]),
            item["folder"],
            str(item["attempts"] or 0),
            route,
            observe.ago(item["age_seconds"]),
            observe.one_line(item["error"], 60),
        )
    out().print(t)


def confirm_or_refuse(yes: bool, question: str) -> None:
    if yes:
        return
    if not os.isatty(0):
        raise UsageError("refusing to delete without --yes when not at a terminal")
    typer.confirm(question, abort=True, err=True)


# --------------------------------------------------------------------------------------------------- queue


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
    if folder is not None and folder not in observe.QUEUE_FOLDERS:
        raise UsageError(f"--folder {folder!r}: choose one of {', '.join(observe.QUEUE_FOLDERS)}")
    items = observe.queue_items(workspace(), (folder,) if folder else observe.QUEUE_FOLDERS)
    print_json(items) if json_out else print_queue(items)


@queue_app.command("show")
def queue_show(
    message_id: Annotated[str, typer.Argument(help="The message id (or 8+ characters of its beginning or end).")],
    json_out: JsonOpt = False,
) -> None:
    """Show one queued message (its JSON file) and, for a dead letter, why it died.

    Example: agents queue show 9fae00da
    """
    item = observe.queue_item(workspace(), message_id)
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
    result = observe.requeue_dead(workspace(), message_id)
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
    count = len(observe.queue_items(ws, ("dead",)))
    if count:
        confirm_or_refuse(yes, f"Delete {count} dead letter(s)?")
    removed = observe.purge_dead(ws) if count else []
    print_json({"purged": removed}) if json_out else out().print(f"purged {len(removed)} dead letter(s)")


# -------------------------------------------------------------------------------------------- registration


def register(app: typer.Typer) -> None:
    app.add_typer(queue_app)

    @app.command("history")
    def history_cmd(
        name: Annotated[str, typer.Argument(help="The agent.")],
        last: Annotated[int | None, typer.Option("-n", "--last", min=0, help="Only the last N turns.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="One stored HistoryEntry JSON object per line.")] = False,
        follow_: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new turns (Ctrl-C to stop).")
        ] = False,
    ) -> None:
        """Show an agent's conversation: messages, replies, and its tool calls folded into one line each.

        Examples:
          agents history researcher -n 3
          agents history researcher --json | jq -r 'select(.role=="assistant") | .content'
          agents history researcher --follow
        """
        ws = workspace()
        if follow_:
            if not ws.history_file(name).exists():
                observe.history_lines(ws, name)  # an unknown agent is an error; a known one may speak later
            follow(ws, name, last, json_out)
        else:
            print_turns(observe.history_lines(ws, name, last), json_out)

    @app.command("trace")
    def trace_cmd(
        message_id: Annotated[
            str | None, typer.Argument(help="Any message id of the chain (or 8+ characters of its beginning or end).")
        ] = None,
        last: Annotated[
            bool, typer.Option("--last", help="The chain of the most recent message sent from a shell.")
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Draw a chain's causal tree: each message, the turn it triggered (tools, tokens, time), what that sent.

        Examples:
          agents trace --last
          agents trace 9fae00da --json | jq '.messages[0].turn.tool_calls'
        """
        if (message_id is None) == (not last):
            raise UsageError("give a MESSAGE_ID or --last (one of them)")
        ws = workspace()
        chain = observe.last_chain(ws) if last else observe.find_chain(ws, message_id or "")
        tree_data = observe.chain_tree(ws, chain)
        if json_out:
            print_json(tree_data)
            return
        from rich.tree import Tree

        tree = Tree(f"chain {tree_data['chain_id']}", guide_style="dim")
        for node in tree_data["messages"]:
            add_message(tree, node)
        out().print(tree, soft_wrap=False)  # wrap long lines inside the tree rather than crop them

    @app.command("usage")
    def usage_cmd(
        name: Annotated[str | None, typer.Argument(help="Only this agent.")] = None,
        since: Annotated[
            str | None, typer.Option("--since", "-s", help="ISO time, or an age: 30s, 10m, 2h, 1d, 1w.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Tokens, model calls and estimated cost per agent and per chain (retried attempts included).

        Costs need [prices.<model>] in agents.toml (USD per million tokens).

        Examples: agents usage --since 1d    agents usage researcher --json | jq .total.total_tokens
        """
        ws = workspace()
        report = observe.usage(ws, name, observe.parse_since(since) if since else None)
        if name is not None and not report["agents"]:
            from letta_cli.store.agents import AgentStore

            if not AgentStore(ws).exists(name):
                raise NotFound(f"no agent named {name!r} and no usage for it")
        print_json(report) if json_out else print_usage(report)

    @app.command("status")
    def status_cmd(json_out: JsonOpt = False) -> None:
        """Is a scheduler running, how deep is the queue, how many dead letters, when was the last activity.

        Example: agents status --json | jq .queue
        """
        report = observe.status(workspace())
        if json_out:
            print_json(report)
            return
        sched = report["scheduler"]
        q = report["queue"]
        rows = [
            ("workspace", report["workspace"]),
            ("scheduler", f"running (pid {sched['pid']})" if sched["running"] else "not running"),
            ("queue", f"new {q['new']} · cur {q['cur']} · dead {q['dead']} · corrupt {q['corrupt']}"),
            ("agents", str(report["agents"])),
            (
                "last activity",
                f"{local_time(report['last_activity'])} ({report['last_event']})"
                if report["last_activity"]
                else "none",
            ),
        ]
        console = out()
        for key, value in rows:
            console.print(f"{key:<14} {value}", markup=False, highlight=False)
        if q["dead"]:
            err_console().print(
                f"{q['dead']} dead letter(s): see `agents queue list --folder dead`", markup=False
            ) if os.isatty(2) else None
