"""Seeing what happened: history, trace, usage, status. Thin shells over letta_cli.app's history_view,
trace_view, usage and status (`agents queue` is in queue_cmds)."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from letta_cli.app.refs import short_id as short
from letta_cli.cli.common import err_console, lazy, out, print_json, table, workspace, write_json_text
from letta_cli.core.errors import UsageError
from letta_cli.core.text import flatten

if TYPE_CHECKING:
    from rich.tree import Tree

history_view = lazy("letta_cli.app.history_view")
trace_view = lazy("letta_cli.app.trace_view")
usage_report = lazy("letta_cli.app.usage")
status_report = lazy("letta_cli.app.status")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/observability.md).")]
FOLLOW_POLL_SECONDS = 0.2

# ------------------------------------------------------------------------------------------------ helpers


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
            write_json_text(line)
    else:
        console = out()
        for turn_id, entries in history_view.group_turns(lines):
            console.print(
                f"── {local_time(entries[0].get('created_at'))}  turn {short(turn_id)}", style="dim", markup=False
            )
            for style, text in history_view.render_turn(entries):
                console.print(text, style=style or None, markup=False, highlight=False)
    sys.stdout.flush()


class Stop:
    """SIGTERM (and Ctrl-C) end a --follow loop cleanly, with exit status 0."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGTERM, self.stop)

    def stop(self, *_: object) -> None:
        self.stopped = True


def follow(name: str, last: int | None, json_out: bool) -> None:
    follower, lines = history_view.follow(workspace(), name, last)
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


def turn_label(turn: dict[str, Any] | None) -> str:
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


def add_message(tree: Tree, node: dict[str, Any]) -> None:
    from rich.text import Text

    label = Text()
    label.append(f"{node['sender']} → {node['recipient']}", style="bold")
    label.append(f"  {node['kind']}, hop {node['hop']}  ", style="cyan")
    label.append(flatten(node["body"], 70))
    label.append(f"  {short(node['message_id'])}", style="dim")
    branch = tree.add(label)
    turn = node["turn"]
    status_style = {"ok": "green", "running": "yellow"}.get(turn["status"] if turn else "", "red" if turn else "dim")
    sub = branch.add(Text(turn_label(turn), style=status_style))
    if turn is None:
        return
    for retry in turn["retries"]:
        sub.add(Text(f"attempt {retry['attempt']} failed: {flatten(retry['error'], 100)}", style="red"))
    for call in turn["tool_calls"]:
        sub.add(
            Text(
                history_view.tool_line(call["tool"], call["arguments"], call["result"], bool(call["error"])),
                style="dim",
                overflow="fold",
            )
        )
    for child in node["children"]:
        add_message(sub, child)
    for reply in turn["reply"]:
        sub.add(Text(f"reply: {flatten(reply, 200)}"))
    if turn["error"]:
        sub.add(Text(f"error: {turn['error']}", style="red"))


# ------------------------------------------------------------------------------------------------- render


def cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def print_usage(report: dict[str, Any]) -> None:
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


# -------------------------------------------------------------------------------------------- registration


def register(app: typer.Typer) -> None:
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
        if follow_:
            follow(name, last, json_out)
        else:
            print_turns(history_view.history_lines(workspace(), name, last), json_out)

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
        chain = trace_view.last_chain(ws) if last else trace_view.find_chain(ws, message_id or "")
        tree_data = trace_view.chain_tree(ws, chain)
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
        try:
            when = usage_report.parse_since(since) if since else None
        except UsageError as exc:
            raise UsageError(f"--since {exc}") from None
        report = usage_report.usage(workspace(), name, when)
        print_json(report) if json_out else print_usage(report)

    def daemon_rows(daemon: dict[str, Any] | None) -> list[tuple[str, str]]:
        if daemon is None:
            return []
        return [
            (
                "daemon",
                f"since {local_time(daemon['since'])}, exits after {daemon['idle_timeout']:g}s idle (agents stop)",
            ),
            ("socket", str(daemon["socket"])),
        ]

    @app.command("status")
    def status_cmd(json_out: JsonOpt = False) -> None:
        """Is a scheduler running, how deep is the queue, how many dead letters, when was the last activity.

        Example: agents status --json | jq .queue
        """
        report = status_report.status(workspace())
        if json_out:
            print_json(report)
            return
        sched = report["scheduler"]
        q = report["queue"]
        rows = [
            ("workspace", report["workspace"]),
            ("scheduler", f"running (pid {sched['pid']}, {sched['kind']})" if sched["running"] else "not running"),
            ("queue", f"new {q['new']} · cur {q['cur']} · dead {q['dead']} · corrupt {q['corrupt']}"),
            *daemon_rows(report["daemon"]),
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
