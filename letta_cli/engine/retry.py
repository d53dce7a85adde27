"""What a failed turn means, decided in one place:

- the model endpoint failed, or the user can fix something (a missing endpoint, a broken memory file: an
  AgentsError): retry with backoff while attempts remain and the failure is not permanent, else dead-letter;
- the chain's budget is spent: the turn ends "stopped";
- the disk refused a read or a write (StorageError, OSError): stop the scheduler rather than guess;
- anything else is a bug in letta-cli: dead-letter at once (a retry will not fix a bug), saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

from letta_cli.core.config import DAY, Limits
from letta_cli.core.errors import AgentsError, StorageError
from letta_cli.core.models import TurnStatus
from letta_cli.core.secrets import redact
from letta_cli.engine.budgets import BudgetExceeded
from letta_cli.model.client import describe, is_model_error, is_permanent


@dataclass(frozen=True)
class Retry:
    delay: float
    reason: str


@dataclass(frozen=True)
class Final:
    """The turn ends with this status and reason (its record is committed, the message acked or dead)."""

    status: TurnStatus
    reason: str
    internal: bool = False  # a bug of ours, not the model's or the user's


@dataclass(frozen=True)
class Halt:
    """Stop the scheduler; the message stays claimed and is recovered by the next one."""

    error: StorageError


Verdict = Retry | Final | Halt


def judge(exc: Exception, attempts: int, limits: Limits) -> Verdict:
    if isinstance(exc, BudgetExceeded):
        return Final("stopped", str(exc))
    if isinstance(exc, StorageError):
        return Halt(exc)
    if isinstance(exc, OSError):
        return Halt(storage_failure(exc))
    if isinstance(exc, AgentsError):
        return Final("dead", redact(str(exc)))
    if is_model_error(exc):
        reason = describe(exc)
        if is_permanent(exc) or attempts >= limits.max_attempts:
            return Final("dead", reason)
        return Retry(backoff(limits, attempts), reason)
    return Final("dead", internal_reason(exc), internal=True)


def backoff(limits: Limits, attempts: int) -> float:
    """Seconds before the next try: retry_backoff doubled per attempt, at most a day (never an overflow)."""
    return min(limits.retry_backoff * 2.0 ** min(attempts - 1, 40), DAY)


def storage_failure(exc: StorageError | OSError) -> StorageError:
    return exc if isinstance(exc, StorageError) else StorageError(f"storage failure: {exc}")


def internal_reason(exc: BaseException) -> str:
    """One line for a dead letter: the type and the first line of the message, no traceback."""
    first = next(iter(str(exc).strip().splitlines()), "")
    return redact(f"internal error: {type(exc).__name__}{': ' + first if first else ''}")[
        :500
    ]  # cut after: no half key
