"""The one rule for names of agents, blocks and tags: safe as file names, readable in a shell."""

import re

from letta_cli.core.errors import UsageError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
NAME_RULE = "lowercase letters, digits, '-' and '_', at most 64 characters, starting with a letter or digit"

# Names that stand for someone other than an agent, so no agent may take one: a message from an agent named
# "user" would pass for the person at the shell.
RESERVED_AGENT_NAMES = {
    "user": "the person at the shell",
    "system": "the system prompt's role",
    "assistant": "the model's role",
    "tool": "the role of tool results",
    "cli": "edits made with the CLI in the block change log",
    "import": "blocks made by an import in the block change log",
}


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def check_name(name: str, what: str = "agent name") -> str:
    if not is_valid_name(name):
        # ascii() shows look-alikes for what they are: 'а' (Cyrillic) prints as '\u0430'
        shown = ascii(name) if isinstance(name, str) and not name.isascii() else repr(name)
        raise UsageError(f"invalid {what} {shown}: use {NAME_RULE}")
    return name


def reserved_reason(name: str) -> str | None:
    """Why an agent may not be called `name` ("agent name 'user' is reserved: ..."), or None."""
    who = RESERVED_AGENT_NAMES.get(name)
    return None if who is None else f"agent name {name!r} is reserved: it stands for {who}"


def check_agent_name(name: str) -> str:
    """check_name, and none of the reserved names."""
    check_name(name, "agent name")
    reason = reserved_reason(name)
    if reason is not None:
        raise UsageError(f"{reason}; choose another name")
    return name


def split_csv(values: list[str] | None) -> list[str]:
    """`--tag a,b --tag c` -> [a, b, c], order kept, duplicates dropped."""
    out: list[str] = []
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out
