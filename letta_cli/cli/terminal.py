"""What the CLI prints: text from models, agents and workspace files is shown, never obeyed.

A reply, a block or an agent file may hold escape sequences (a window title, cursor moves, a cleared screen)
or a secret echoed by an endpoint. Every console of the CLI is a SafeConsole: a string is cleaned before rich
lays it out (so widths stay right), and a render hook cleans whatever reaches it as ready-made Text. Markup
is off, so a model's "[link=...]" is text, not a hyperlink. rich is imported here, never at CLI start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook
from rich.segment import Segment
from rich.text import Text

from letta_cli.core.text import for_terminal


class _Cleaned:
    def __init__(self, renderable: ConsoleRenderable):
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        for segment in console.render(self.renderable, options):
            # control segments are rich's own cursor moves (a spinner's); text segments are ours to clean
            yield segment if segment.control else Segment(for_terminal(segment.text), segment.style)


class _CleanEverything(RenderHook):
    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Cleaned(r) for r in renderables]


class SafeConsole(Console):
    def __init__(self, **kwargs: Any):
        super().__init__(markup=False, emoji=False, **kwargs)
        self.push_render_hook(_CleanEverything())

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(for_terminal(text), **kwargs)
