"""Agent definitions: init, create, list, show, delete, tag, edit."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from letta_cli.app import agents
from letta_cli.app.agents import agent_json
from letta_cli.cli.common import (
    G,
    confirm_or_refuse,
    err_console,
    out,
    plain_table,
    print_json,
    read_message,
    table,
    warn,
    workspace,
)
from letta_cli.core.errors import Conflict, InvalidFile, UsageError
from letta_cli.core.names import split_csv

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/cli.md).")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag; repeat or use a,b.")]


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        directory: Annotated[Path | None, typer.Argument(help="Folder to set up (default: -w, else here).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Create a workspace: agents.d/, agents.toml (commented defaults) and .agents/.

        Example: agents init my-team && cd my-team && agents create helper
        """
        ws, created = agents.init(directory or Path(G.workspace or Path.cwd()))
        if json_out:
            print_json({"workspace": str(ws.root), "created": created})
        elif created:
            out().print(f"Initialised {ws.root} ({', '.join(created)})")
        else:
            out().print(f"{ws.root} is already a workspace")

    @app.command("create")
    def create_cmd(
        name: Annotated[str, typer.Argument(help="Agent name: lowercase letters, digits, - and _.")],
        model: Annotated[str | None, typer.Option("--model", "-m", help="Model name, or 'local'.")] = None,
        system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt ('-': stdin).")] = None,
        system_file: Annotated[
            Path | None, typer.Option("--system-file", help="Read the system prompt from a file.")
        ] = None,
        description: Annotated[str, typer.Option("--description", "-d", help="What the agent is for.")] = "",
        tag: TagOpt = None,
        memory: Annotated[
            list[str] | None, typer.Option("--memory", help="Private block LABEL=VALUE; repeatable.")
        ] = None,
        shared: Annotated[list[str] | None, typer.Option("--shared", help="Attach a shared block; repeatable.")] = None,
        first_tool: Annotated[
            str | None, typer.Option("--first-tool", help="Tool the model must call first in each turn.")
        ] = None,
        tools: Annotated[
            str | None, typer.Option("--tools", help="Enabled tools, a,b ('none': no tools; default: all built-ins).")
        ] = None,
        force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing agent.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Create an agent in agents.d/NAME.toml.

        Examples:
          agents create researcher -m gpt-4o-mini -t team,research --memory persona="I dig up facts"
          agents create boss --shared plan --system-file prompts/boss.md
        """
        if system is not None and system_file is not None:
            raise UsageError("give --system or --system-file, not both")
        if system == "-":
            system = read_message("-", "system prompt")
        if system_file is not None:
            system = agents.read_text_file(system_file)
        agent = agents.new_agent(
            name,
            model=model,
            system=system,
            description=description,
            tags=split_csv(tag),
            memory=agents.parse_assignments(memory or [], "--memory"),
            shared=split_csv(shared),
            first_tool=first_tool,
            tools=None if tools is None else [] if tools.strip() == "none" else split_csv([tools]),
        )
        try:
            path = agents.create(workspace(), agent, replace=force)
        except agents.AgentExists as exc:
            raise Conflict(f"{exc}; use --force to replace it") from None
        if json_out:
            print_json(agent_json(agent, path))
        else:
            out().print(f"Created agent {agent.name} ({path})")

    @app.command("list")
    def list_cmd(tag: TagOpt = None, json_out: JsonOpt = False) -> None:
        """List agents; with --tag, only those having ALL the tags.

        Examples: agents list --tag worker --tag team-a    agents list --json | jq -r '.[].name'
        """
        report = agents.list_agents(workspace(), split_csv(tag))
        for line in report.errors:
            warn(f"error: {line}")
        if json_out:
            print_json([agent_json(a) for a in report.agents])
        elif not sys.stdout.isatty():
            rows = [(a.name, a.model or "(default)", ",".join(a.tags), a.description) for a in report.agents]
            plain_table(("name", "model", "tags", "description"), rows)
        else:
            t = table("name", "model", "tags", "description")
            for a in report.agents:
                t.add_row(a.name, a.model or "(default)", ",".join(a.tags), a.description)
            out().print(t)
        if report.errors:
            raise typer.Exit(InvalidFile.exit_code)

    @app.command("show")
    def show_cmd(name: str, json_out: JsonOpt = False) -> None:
        """Show one agent's definition. Example: agents show researcher --json"""
        from letta_cli.app.tools import agent_tools

        ws = workspace()
        agent, path, text = agents.show(ws, name)
        custom = agent_tools(ws, agent)
        if json_out:
            print_json({**agent_json(agent, path), "custom_tools": custom})
            return
        console = out()
        console.print(f"# {path}", style="dim")
        console.print(text, markup=False)
        for tool in custom:
            where = f" from {tool['source']}" if tool["source"] else ""
            console.print(f"# tool {tool['name']}{where}: {tool['status']}", style="dim", markup=False)

    @app.command("delete")
    def delete_cmd(
        name: str,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    ) -> None:
        """Delete an agent's definition (its history and blocks under .agents/ are kept).

        Example: agents delete scratch --yes
        """
        ws = workspace()
        agents.get(ws, name)
        confirm_or_refuse(yes, f"Delete agent {name}?")
        path = agents.delete(ws, name)
        err_console().print(f"Deleted {path}") if os.isatty(2) else None

    @app.command("tag")
    def tag_cmd(
        name: str,
        add: Annotated[list[str] | None, typer.Option("--add", "-a", help="Tag to add; repeat or a,b.")] = None,
        remove: Annotated[list[str] | None, typer.Option("--remove", "-r", help="Tag to remove.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Add or remove tags; with neither, print the tags.

        Example: agents tag researcher --add senior --remove junior
        """
        agent = agents.tag(workspace(), name, split_csv(add), split_csv(remove))
        if json_out:
            print_json({"name": agent.name, "tags": agent.tags})
        else:
            out().print(" ".join(agent.tags))

    @app.command("edit")
    def edit_cmd(name: str) -> None:
        """Open the agent file in $EDITOR; the change is kept only if it validates.

        Example: EDITOR=nano agents edit researcher
        """
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with agents.edit(workspace(), name) as draft:
            try:
                status = subprocess.call([*shlex.split(editor), str(draft.path)])
            except OSError as exc:
                raise UsageError(f"cannot run the editor {editor!r}: {exc.strerror or exc}") from None
            if status != 0:
                raise UsageError(f"{editor} exited with an error; {draft.target} is unchanged")
            outcome = draft.save()
        out().print(f"No changes to {draft.target}" if outcome == "unchanged" else f"Saved {draft.target}")
