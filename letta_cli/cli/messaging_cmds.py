"""Talking to agents from the shell: send, broadcast, run."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from letta_cli.cli.common import G, info, lazy, out, print_json, read_message, table, workspace, write_text
from letta_cli.core.errors import ModelFailure, UsageError
from letta_cli.core.models import USER
from letta_cli.core.names import split_csv

client = lazy("letta_cli.app.messaging")
progress_view = lazy("letta_cli.cli.progress_view")
daemon = lazy("letta_cli.app.daemon_client")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/cli.md).")]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=0, help="Seconds to wait for replies (default: no limit).")
]
FromOpt = Annotated[str, typer.Option("--from", help="Sender: an agent name, or 'user' (default).")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Publish, print the message id, and return at once.")]


def register(app: typer.Typer) -> None:
    @app.command("send")
    def send_cmd(
        name: Annotated[str, typer.Argument(help="The agent to send to.")],
        message: Annotated[str | None, typer.Argument(help="The message; '-' or omitted: read stdin.")] = None,
        sender: FromOpt = USER,
        no_wait: NoWaitOpt = False,
        timeout: TimeoutOpt = None,
        tool: Annotated[
            str | None, typer.Option("--tool", help="Make the model call this tool first in this turn.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Send a message to an agent and print its reply.

        If no scheduler runs, this command starts the scheduler daemon (it exits when idle; `agents status`,
        `agents stop`; AGENTS_DAEMON=0: serve in this process instead), so scripts need no set-up.

        Examples:
          agents send researcher "What is a memory block?"
          git diff | agents send reviewer --json | jq -r .reply
          agents send worker-1 --no-wait "start" && agents run
          agents send boss --tool send_message_to_agents_matching_all_tags "Poll the workers"
        """
        ws = workspace()
        client.check_agent(ws, name)  # the agent exists: before reading stdin, an unknown agent fails at once
        body = read_message(message)
        [msg] = client.publish(ws, [name], body, sender=sender, force_tool=tool, wait=not no_wait)
        if no_wait:
            print_json({"message_id": msg.id, "agent": name, "status": "queued"}) if json_out else out().print(msg.id)
            return
        with progress_view.watching(ws, [msg], quiet=G.quiet, verbose=G.verbose) as progress:
            result = client.collect_reply(ws, msg, timeout, on_poll=progress.on_poll, on_event=progress.on_event)
        if json_out:
            print_json(result.as_json())
        elif result.reply and not sys.stdout.isatty():
            write_text(result.reply)  # the same cleaning as the console's, without importing rich
        elif result.reply:
            out().print(result.reply, markup=False, highlight=False)
        if result.failure is not None:
            raise ModelFailure(result.failure)

    @app.command("broadcast")
    def broadcast_cmd(
        tags: Annotated[list[str], typer.Option("--tags", "-t", help="Tags the agents must ALL have; repeat or a,b.")],
        message: Annotated[str | None, typer.Argument(help="The message; '-' or omitted: read stdin.")] = None,
        sender: FromOpt = USER,
        no_wait: NoWaitOpt = False,
        timeout: TimeoutOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Send a message to every agent having ALL the tags and collect every reply.

        Exit status: 0 when every agent answered; 3 when no agent matches; 6 on --timeout (the replies that
        came are still printed); 7 when any agent failed.

        Examples:
          agents broadcast --tags worker "Report your status"
          echo "ship it?" | agents broadcast -t team-a,reviewer --json | jq '.[] | select(.error)'
        """
        ws = workspace()
        wanted = split_csv(tags)
        if not wanted:
            raise UsageError("--tags is empty: give at least one tag")
        names = client.broadcast_targets(ws, wanted, sender)  # before reading stdin
        body = read_message(message)
        messages = client.publish(ws, names, body, sender=sender, kind="broadcast", wait=not no_wait)
        if no_wait:
            print_json(client.queued(messages)) if json_out else out().print("\n".join(m.id for m in messages))
            return
        with progress_view.watching(ws, messages, quiet=G.quiet, verbose=G.verbose) as progress:
            result = client.collect_replies(ws, messages, timeout, on_poll=progress.on_poll, on_event=progress.on_event)
        if json_out:
            print_json(result.rows())
        else:
            t = table("agent", "reply")
            for r in result.replies:
                t.add_row(r.agent, r.reply if r.error is None else f"ERROR: {r.error}")
            out().print(t)
        if result.timed_out is not None:
            raise result.timed_out
        if result.outcome == "failed":
            raise typer.Exit(ModelFailure.exit_code)

    @app.command("run")
    def run_cmd(
        watch: Annotated[bool, typer.Option("--watch", help="Keep serving until Ctrl-C / SIGTERM.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Run the scheduler: handle every queued message, then exit (or keep serving with --watch).

        Only one scheduler runs per workspace; a second is refused (exit 5). A scheduler daemon that sends
        started is stopped instead (the turns it was running go back to the queue) and this command serves,
        with this shell's environment.

        Examples:
          agents run                # drain the queue and exit
          agents run --watch &      # serve in the background
        """
        ws = workspace()
        info("serving the queue (Ctrl-C to stop)…" if watch else "draining the queue…")
        handled = client.run_scheduler(ws, "watch" if watch else "drain", take_over=True)
        if json_out:
            print_json({"handled": handled})
        else:
            info(f"handled {handled} message(s)")

    @app.command("stop")
    def stop_cmd(json_out: JsonOpt = False) -> None:
        """Stop the scheduler daemon (turns it is running stay queued; the next send starts a new one).

        `agents send` and `broadcast` start the daemon when no scheduler runs; it exits by itself after
        limits.daemon_idle_timeout seconds without work. A scheduler of `agents run` is not stopped here.

        Example: agents stop
        """
        stopped = daemon.stop(workspace())
        if json_out:
            print_json({"stopped": stopped is not None, "pid": stopped.get("pid") if stopped else None})
        elif stopped is None:
            write_text("no scheduler daemon is running")
        else:
            write_text(f"stopped the scheduler daemon (pid {stopped.get('pid')})")
