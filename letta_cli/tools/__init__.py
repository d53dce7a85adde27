"""tools: the tools a model can call — Letta's memory and multi-agent tools, and the user's command tools. Each is a name, the schema the
model is offered, a validator of the model's arguments (schema and validator from one pydantic model), and a
run that sees the turn only through letta_cli.ports.

base (what a tool is), memory, messaging, registry (the built-ins, in order), command (command tools declared
in TOML: offered, validated, replay-safe) and process (running one command in its own process group).
May import letta_cli.core, letta_cli.store and letta_cli.ports.
"""
