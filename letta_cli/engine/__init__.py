"""engine: running turns. prompt (the system prompt), turn (one turn: model calls and tool calls), and the
single-process scheduler that implements letta_cli.ports.Runtime, with its parts: intake (what may start),
budgets, replies and waits (requests between turns, the waits-for graph), delivery (commit, then apply) and
retry (what a failure means).

May import letta_cli.core, store, model, ports and tools.
"""
