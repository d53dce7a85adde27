"""Drawing the progress of a waiting `agents send` / `broadcast` on stderr: a spinner at a terminal (unless
--quiet) and, with -v, one line per turn event. stdout stays for the result."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from letta_cli.app.progress import Progress
from letta_cli.core.models import Message
from letta_cli.core.text import for_terminal
from letta_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from rich.status import Status
    from rich.text import Text


class Headline:
    """Re-rendered at every refresh of the spinner, so the times keep running."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __rich__(self) -> Text:
        from rich.text import Text

        return Text(for_terminal(self.progress.headline()), no_wrap=True, overflow="ellipsis")


class Lines:
    """The -v event lines: above the spinner if there is one, else straight to stderr."""

    def __init__(self) -> None:
        self.status: Status | None = None
        self.broken = False

    def __call__(self, line: str) -> None:
        if self.broken:
            return
        try:
            if self.status is not None:
                self.status.console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                sys.stderr.write(for_terminal(line) + "\n")
                sys.stderr.flush()
        except OSError:  # stderr went away (a closed pipe): stop talking, keep working
            self.broken = True


@contextlib.contextmanager
def watching(ws: Workspace, messages: list[Message], *, quiet: bool, verbose: bool) -> Iterator[Progress]:
    """Progress as the CLI wants it: a spinner only on a terminal (and not --quiet); lines with -v always."""
    lines = Lines() if verbose else None
    progress = Progress(ws, messages, on_line=lines)
    status = None
    if not quiet and sys.stderr.isatty():
        from rich.status import Status

        from letta_cli.cli.terminal import SafeConsole

        status = Status(Headline(progress), console=SafeConsole(stderr=True, highlight=False), spinner="dots")
        status.start()
    if lines is not None:
        lines.status = status
    try:
        progress.start()
        yield progress
        progress.finish()
    finally:
        if status is not None:
            status.stop()
