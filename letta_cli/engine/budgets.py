"""A chain's budgets: how many agent-to-agent turns one chain may run, and how many tokens the chain (and each
agent within it) may use. A spent budget stops the chain: the turn that finds it spent ends "stopped"."""

from __future__ import annotations

from collections import Counter

from letta_cli.core.config import Limits
from letta_cli.core.models import Message, Usage


class BudgetExceeded(Exception):
    """A chain (or an agent within it) used up its token budget: the chain stops."""


class Budgets:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.chain_turns: Counter[str] = Counter()
        self.chain_tokens: Counter[str] = Counter()
        self.agent_chain_tokens: Counter[tuple[str, str]] = Counter()

    def admit(self, message: Message) -> str | None:
        """Count the turn of `message` against its chain; the reason it may not run if the chain is out of turns.
        Messages from the shell start chains: only agent-to-agent turns are counted."""
        if message.hop == 0:
            return None
        if self.chain_turns[message.chain_id] >= self.limits.chain_turn_budget:
            return f"chain turn budget ({self.limits.chain_turn_budget}) exhausted"
        self.chain_turns[message.chain_id] += 1
        return None

    def charge(self, chain: str, agent: str, usage: Usage) -> None:
        """Count a model call's tokens; raises BudgetExceeded once the chain's or the agent's budget is passed."""
        self.chain_tokens[chain] += usage.total_tokens
        self.agent_chain_tokens[(chain, agent)] += usage.total_tokens
        if self.limits.chain_token_budget and self.chain_tokens[chain] > self.limits.chain_token_budget:
            raise BudgetExceeded(f"chain token budget ({self.limits.chain_token_budget}) exceeded")
        if self.limits.agent_token_budget and self.agent_chain_tokens[(chain, agent)] > self.limits.agent_token_budget:
            raise BudgetExceeded(
                f"agent {agent!r} token budget ({self.limits.agent_token_budget}) exceeded in this chain"
            )
