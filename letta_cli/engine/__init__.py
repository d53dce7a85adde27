"""engine: running turns — the prompt, the turn loop, the waits-for graph, budgets, commit and apply, and the
single-process scheduler that implements letta_cli.ports.Runtime.

May import letta_cli.core, store, model, ports and tools.
"""
