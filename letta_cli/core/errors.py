"""Errors a user can cause. The CLI turns each into one line on stderr and its exit code."""

from typing import Any


class AgentsError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 1


class UsageError(AgentsError):
    exit_code = 2


class NotFound(AgentsError):
    """An unknown agent, block or message."""

    exit_code = 3


class InvalidFile(AgentsError):
    """A state or definition file that does not parse or validate."""

    exit_code = 4


class Conflict(AgentsError):
    """Something already exists, or another process holds what we need."""

    exit_code = 5


class WaitTimeout(AgentsError):
    exit_code = 6

    def __init__(self, message: str, records: dict[str, Any] | None = None):
        super().__init__(message)
        self.records = records or {}  # the replies that did arrive in time


class ModelFailure(AgentsError):
    """The model endpoint failed for good (after retries), or the turn ended in error."""

    exit_code = 7


class StorageError(AgentsError):
    """The filesystem refused a write (EIO, ENOSPC, ...): we stop rather than guess."""

    exit_code = 8


class Interrupted(AgentsError):
    """A waiting command stopped by SIGINT or SIGTERM: exit 128 + the signal (130, 143), messages kept."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum


class ToolError(Exception):
    """A tool call the model got wrong: its message goes back to the model as the tool's result."""
