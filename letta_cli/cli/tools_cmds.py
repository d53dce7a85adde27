"""`agents tools`: the command tools declared in agents.toml and agent files: list, show, test one by hand.
A thin shell over letta_cli.app.tools (imported inside the commands: it loads the tool machinery)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from letta_cli.cli.common import out, print_json, read_message, table, workspace, write_text
from letta_cli.core.errors import UsageError
from letta_cli.core.text import flatten

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (stable format, see docs/tools.md).")]
AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="The agent whose declaration (and name) to use.")]

tools_app = typer.Typer(
    name="tools",
    help="Command tools (docs/tools.md): list them, show one, or run one by hand (default: list).",
    invoke_without_command=True,
)


@tools_app.callback()
def tools_main(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Command tools: `agents tools` lists them."""
    if ctx.invoked_subcommand is None:
        tools_list(json_out=json_out)


@tools_app.command("list")
def tools_list(json_out: JsonOpt = False) -> None:
    """List the command tools, where each is declared and which agents are offered it.

    Example: agents tools list --json | jq -r '.[].name'
    """
    from letta_cli.app import tools

    infos = [info.to_json() for info in tools.list_tools(workspace())]
    if json_out:
        print_json(infos)
        return
    t = table("name", "declared in", "command", "agents", "description")
    for info in infos:
        t.add_row(
            info["name"],
            info["source"],
            flatten(" ".join(info["command"]), 40),
            ",".join(info["agents"]) or "(none)",
            flatten(info["description"], 50),
        )
    out().print(t)


@tools_app.command("show")
def tools_show(name: str, agent: AgentOpt = None, json_out: JsonOpt = False) -> None:
    """Show one command tool: its command, its arguments' schema, limits and who is offered it.

    Example: agents tools show roll_dice
    """
    from letta_cli.app import tools

    info = tools.show_tool(workspace(), name, agent).to_json()
    if json_out:
        print_json(info)
        return
    console = out()
    for key in ("name", "source", "description", "command", "timeout", "output_limit", "env", "idempotent", "flags"):
        value = info[key]
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, list | bool) else str(value)
        console.print(f"{key}: {shown}", markup=False)
    console.print(
        f"agents: {', '.join(info['agents']) or '(none: name it in the tools list of an agent)'}", markup=False
    )
    console.print("parameters:", markup=False)
    console.print(json.dumps(info["parameters"], indent=2, ensure_ascii=False), markup=False)


@tools_app.command("test")
def tools_test(
    name: str,
    arguments: Annotated[str, typer.Argument(help="The arguments as a JSON object ('-': read stdin).")] = "{}",
    agent: AgentOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run a command tool once by hand, exactly as a turn would (checked arguments, scrubbed environment,
    timeout), and print what the model would read. Exit 1 if the command fails.

    Examples:
      agents tools test roll_dice '{"sides": 6}'
      echo '{"url": "https://example.org"}' | agents tools test fetch - --json
    """
    from letta_cli.app import tools

    if arguments == "-":
        arguments = read_message("-", "arguments")
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError as exc:
        raise UsageError(f"the arguments are not valid JSON ({getattr(exc, 'msg', exc)}); give a JSON object") from None
    if not isinstance(parsed, dict):
        raise UsageError("the arguments must be a JSON object, e.g. '{\"sides\": 6}'")
    run = tools.run_once(workspace(), name, arguments, agent)
    if json_out:
        print_json(run.to_json())
    elif run.result.output is not None:
        write_text(run.result.output)
    if run.result.error is not None:
        if json_out:
            raise typer.Exit(tools.ToolRunFailed.exit_code)
        raise tools.ToolRunFailed(run.result.error)


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app)
