"""tools: the tools a model can call — Letta's memory and multi-agent tools — each a name, a schema and a
handler that sees the turn only through letta_cli.ports.

May import letta_cli.core, letta_cli.store and letta_cli.ports.
"""
