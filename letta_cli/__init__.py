"""letta-cli: Letta-style multi-agent systems in the shell, with all state in plain files."""

__version__ = "0.1.0"
