"""Agent definitions: init, create, list, show, delete, tag, edit."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from letta_cli.app.agents import new_agent, parse_assignments
from letta_cli.cli.common import G, err_console, out, print_json, read_message, table, warn, workspace
from letta_cli.core.config import describe_validation
from letta_cli.core.errors import InvalidFile, UsageError
from letta_cli.core.models import AgentDef
from letta_cli.core.names import split_csv
from letta_cli.store.agents import AgentStore, dump_agent, parse_agent_file
from letta_cli.store.fsio import atomic_write
from letta_cli.store.workspace import init_workspace

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/cli.md).")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag; repeat or use a,b.")]


def agent_json(agent: AgentDef, path: Path | None = None) -> dict:
    data = agent.model_dump(mode="json")
    if path is not None:
        data["path"] = str(path)
    return data


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(
        directory: Annotated[Path | None, typer.Argument(help="Folder to set up (default: -w, else here).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Create a workspace: agents.d/, agents.toml (commented defaults) and .agents/.

        Example: agents init my-team && cd my-team && agents create helper
        """
        ws, created = init_workspace(directory or Path(G.workspace or Path.cwd()))
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
            try:
                system = system_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read {system_file}: {getattr(exc, 'strerror', None) or exc}") from None
        agent = new_agent(
            name,
            model=model,
            system=system,
            description=description,
            tags=split_csv(tag),
            memory=parse_assignments(memory or [], "--memory"),
            shared=split_csv(shared),
            first_tool=first_tool,
            tools=None if tools is None else [] if tools.strip() == "none" else split_csv([tools]),
        )
        ws = workspace()
        path = AgentStore(ws).save(agent, overwrite=force)
        if json_out:
            print_json(agent_json(agent, path))
        else:
            out().print(f"Created agent {agent.name} ({path})")

    @app.command("list")
    def list_cmd(tag: TagOpt = None, json_out: JsonOpt = False) -> None:
        """List agents; with --tag, only those having ALL the tags.

        Examples: agents list --tag worker --tag team-a    agents list --json | jq -r '.[].name'
        """
        tags = split_csv(tag)
        store = AgentStore(workspace())
        report = store.matching(tags) if tags else store.load_all()
        for line in report.errors:
            warn(f"error: {line}")
        if json_out:
            print_json([agent_json(a) for a in report.agents])
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
        ws = workspace()
        agent = AgentStore(ws).get(name)
        if json_out:
            print_json(agent_json(agent, ws.agent_file(name)))
            return
        console = out()
        console.print(f"# {ws.agent_file(name)}", style="dim")
        console.print(dump_agent(agent), markup=False)

    @app.command("delete")
    def delete_cmd(
        name: str,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    ) -> None:
        """Delete an agent's definition (its history and blocks under .agents/ are kept).

        Example: agents delete scratch --yes
        """
        store = AgentStore(workspace())
        store.get(name)
        if not yes:
            if not os.isatty(0):
                raise UsageError("refusing to delete without --yes when not at a terminal")
            typer.confirm(f"Delete agent {name}?", abort=True, err=True)
        path = store.delete(name)
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
        store = AgentStore(workspace())
        agent = store.get(name)
        adds, removes = split_csv(add), split_csv(remove)
        tags = [t for t in agent.tags if t not in removes] + [t for t in adds if t not in agent.tags]
        if tags != agent.tags:  # an unchanged file is never rewritten
            try:
                agent = AgentDef.model_validate({**agent.model_dump(), "tags": tags})
            except ValidationError as exc:
                raise UsageError(describe_validation(f"agent {name!r}", exc)) from None
            store.save(agent, overwrite=True)
        if json_out:
            print_json({"name": agent.name, "tags": agent.tags})
        else:
            out().print(" ".join(agent.tags))

    @app.command("edit")
    def edit_cmd(name: str) -> None:
        """Open the agent file in $EDITOR; the change is kept only if it validates.

        Example: EDITOR=nano agents edit researcher
        """
        ws = workspace()
        path = ws.agent_file(name)
        AgentStore(ws).get(name)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.TemporaryDirectory() as tmp:
            draft = Path(tmp) / f"{name}.toml"
            original = path.read_bytes()
            draft.write_bytes(original)
            try:
                status = subprocess.call([*shlex.split(editor), str(draft)])
            except OSError as exc:
                raise UsageError(f"cannot run the editor {editor!r}: {exc.strerror or exc}") from None
            if status != 0:
                raise UsageError(f"{editor} exited with an error; {path} is unchanged")
            try:
                parse_agent_file(draft)
            except InvalidFile as exc:
                reason = str(exc).removeprefix(f"{draft}: ")
                raise InvalidFile(f"{path}: the edit is invalid ({reason}); the file is unchanged") from None
            edited = draft.read_bytes()
            if edited == original:
                out().print(f"No changes to {path}")
                return
            atomic_write(path, edited)
        out().print(f"Saved {path}")
