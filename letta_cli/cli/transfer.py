"""Letta Agent Files (.af): import and export.

letta_cli.app.agentfile is imported inside the commands: its models cost startup time every other command would pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from letta_cli.cli.common import out, print_json, warn, workspace, write_json_text

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/agent-files.md).")]
HistoryOpt = Annotated[bool, typer.Option("--with-history", help="Carry the agents' conversations too.")]


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_cmd(
        file: Annotated[str, typer.Argument(help="The .af file ('-': read it from stdin).")],
        rename: Annotated[
            list[str] | None, typer.Option("--rename", help="Import agent OLD as NEW (OLD=NEW); repeatable.")
        ] = None,
        prefix: Annotated[str, typer.Option("--prefix", help="Put P before the name of every agent not renamed.")] = "",
        with_history: HistoryOpt = False,
        trust_endpoints: Annotated[
            bool,
            typer.Option(
                "--trust-endpoints",
                help="Take the file's model endpoints and key variable names (shown on stderr); "
                "without it they are dropped and this workspace's apply.",
            ),
        ] = False,
        trust_tools: Annotated[
            bool,
            typer.Option(
                "--trust-tools",
                help="Run the file's Python tools as command tools (code written to tools.d/, named on stderr); "
                "without it they are kept disabled, never run.",
            ),
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Import agents, their memory blocks and tool settings from a Letta agent file.

        A block used by several agents becomes one shared block.

        Tools we cannot run (custom code, MCP, archival memory) are kept as disabled_tools, never run; with
        --trust-tools, custom Python tools become command tools whose code is in tools.d/ (docs/tools.md).

        Nothing is written unless all of it can be.

        An agent file is untrusted: its endpoints and key variables are taken only with --trust-endpoints,
        its limits only up to this workspace's.

        Examples:
          agents import memgpt_agent.af
          agents import team.af --prefix copy- --rename "Customer Service=support" --with-history
          curl -s https://example.org/agent.af | agents import -
        """
        from letta_cli.app.agentfile import import_source

        result = import_source(
            workspace(),
            file,
            renames=rename,
            prefix=prefix,
            with_history=with_history,
            trust_endpoints=trust_endpoints,
            trust_tools=trust_tools,
        )
        for line in result.plan.warnings:
            warn(f"warning: {line}")
        if json_out:
            print_json(result.to_json())
            return
        for agent in result.plan.agents:
            origin = result.plan.origin[agent.name]
            renamed = f" (from {origin!r})" if origin != agent.name else ""
            out().print(f"Imported agent {agent.name}{renamed} ({result.paths[agent.name]})", markup=False)
        if result.plan.shared_blocks:
            labels = ", ".join(b.label for b in result.plan.shared_blocks)
            out().print(f"Created shared blocks: {labels}", markup=False)

    @app.command("export")
    def export_cmd(
        names: Annotated[list[str], typer.Argument(help="The agents to export.")],
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Write FILE (atomically) instead of stdout.")
        ] = None,
        force: Annotated[bool, typer.Option("--force", "-f", help="Replace FILE if it exists.")] = False,
        with_history: HistoryOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Export agents as a Letta agent file: definitions, blocks (shared ones once), built-in tools.

        Secrets are never written: no API keys, no environment values, no user:password in URLs.

        Examples:
          agents export researcher > researcher.af
          agents export boss worker-1 worker-2 -o team.af --with-history
        """
        from letta_cli.app.agentfile import dump_agent_file, export_agents, export_to

        if output is None:
            write_json_text(dump_agent_file(export_agents(workspace(), names, with_history=with_history)).rstrip("\n"))
            return
        summary = export_to(workspace(), names, output, force=force, with_history=with_history).to_json()
        if json_out:
            print_json(summary)
        else:
            out().print(f"Exported {', '.join(summary['agents'])} to {output}", markup=False)
