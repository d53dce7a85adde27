"""The waits-for graph: which agent's turn waits on which. A new edge that closes a cycle would deadlock, so it
is refused with a tool error the waiting model can read."""

from __future__ import annotations

from collections import Counter

from letta_cli.core.errors import ToolError


class WaitsFor:
    """Which agent's turn waits on which; a new edge that closes a cycle would deadlock, so it is refused."""

    def __init__(self) -> None:
        self.edges: Counter[tuple[str, str]] = Counter()

    def reaches(self, start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(b for (a, b), n in self.edges.items() if a == node and n > 0)
        return False

    def add(self, waiter: str, target: str) -> None:
        if waiter == target or self.reaches(target, waiter):
            raise ToolError(
                f"refused: {target!r} is already waiting (directly or through others) on {waiter!r}, so waiting "
                "for its reply would deadlock; use send_message_to_agent_async instead"
            )
        self.edges[(waiter, target)] += 1

    def remove(self, waiter: str, target: str) -> None:
        self.edges[(waiter, target)] -= 1
        if self.edges[(waiter, target)] <= 0:
            del self.edges[(waiter, target)]
