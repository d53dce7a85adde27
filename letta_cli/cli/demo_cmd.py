"""`agents demo`: a real multi-agent run, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        directory: Annotated[
            Path | None, typer.Option("--dir", help="Fresh folder for the demo workspace (default: a new temp folder).")
        ] = None,
        model: Annotated[
            str | None, typer.Option("--model", "-m", help="Model for every agent ('local' = embedded).")
        ] = None,
    ) -> None:
        """Run the demo: a supervisor and three workers with a shared memory block; a broadcast from the shell,
        a supervisor broadcasting with its tool, a wait-for-reply exchange, a shared-block edit seen by another
        agent, an async message, then the traces and usage. Each step checks what the model did.

        Uses the embedded local model (no API key needed) unless OPENAI_API_KEY or OPENAI_BASE_URL is set.

        Examples:
          agents demo
          OPENAI_API_KEY=sk-... agents demo --model gpt-4o-mini --dir ./demo
        """
        from letta_cli.app.demo import run_demo

        run_demo(directory, model)
