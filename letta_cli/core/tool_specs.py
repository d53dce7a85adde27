"""Command tools as declared in TOML: `[tools.NAME]` in agents.toml (workspace-wide) or `[command_tools.NAME]`
in an agent file. A declaration says what the model is offered (name, description, the JSON schema of the
arguments, or a short typed form that produces one) and how the tool runs (an argv list, never a shell
string; a timeout; an output limit; the environment variables it may see; whether a second run is harmless).

An agent is offered a command tool only when its `tools` list names it. docs/tools.md has the format.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TOOL_NAME_RULE = "letters, digits, _ and -, starting with a letter or _ (at most 64)"
TOOL_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # what chat-completions servers accept
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FLAG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # an argument passed as --key value
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")
MAX_OUTPUT_CHARS = 8000  # what a turn passes on of any tool result


def check_tool_name(name: str) -> str:
    if not TOOL_NAME_RE.match(name):
        raise ValueError(f"invalid tool name {name!r}: use {TOOL_NAME_RULE}")
    return name


def short_property(key: str, form: str) -> tuple[dict[str, Any], bool]:
    """One argument of the short typed form: "integer", "string?" (optional), "string[]" (a list of strings),
    "integer: how many sides" (with a description). Returns (the JSON-schema property, required)."""
    kind, _, description = form.partition(":")
    kind = kind.strip()
    required = not kind.endswith("?")
    kind = kind.removesuffix("?")
    prop: dict[str, Any]
    if kind.endswith("[]"):
        item = kind.removesuffix("[]")
        if item not in JSON_TYPES:
            raise ValueError(f"argument {key!r}: unknown item type {item!r}; use one of {', '.join(JSON_TYPES)}")
        prop = {"type": "array", "items": {"type": item}}
    elif kind in JSON_TYPES:
        prop = {"type": kind}
    else:
        raise ValueError(
            f"argument {key!r}: unknown type {kind!r}; use one of {', '.join(JSON_TYPES)}, "
            "with ? for optional or [] for a list"
        )
    if description.strip():
        prop["description"] = description.strip()
    return prop, required


class CommandToolSpec(BaseModel):
    """One command tool, as written in TOML."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=10_000)
    command: list[str] | None = Field(None, min_length=1, max_length=1000)
    python: str | None = Field(None, min_length=1, max_length=4096)  # a script run with agents' own Python
    args: dict[str, str | dict[str, Any]] | None = None  # the short typed form
    parameters: dict[str, Any] | None = None  # a JSON schema (an object), as sent to the model
    timeout: float = Field(30.0, gt=0, le=3600, description="seconds before the command is killed")
    output_limit: int = Field(MAX_OUTPUT_CHARS, ge=1, le=MAX_OUTPUT_CHARS, description="characters of stdout kept")
    env: list[str] = Field(default_factory=list, max_length=200)  # variables passed through, by name
    idempotent: bool = False  # true: a call interrupted by a crash may be run again
    flags: bool = False  # also pass each argument as --key value after the command

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_NAME_RE.match(name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> CommandToolSpec:
        if (self.command is None) == (self.python is None):
            raise ValueError('give the command as `command = [argv...]` or `python = "script.py"` (one of them)')
        if self.args is not None and self.parameters is not None:
            raise ValueError("give the arguments as `args` (short form) or `parameters` (JSON schema), not both")
        schema = self.arguments_schema()  # raises on a bad short form
        if schema.get("type") != "object" or not isinstance(schema.get("properties", {}), dict):
            raise ValueError('parameters must be a JSON schema of an object: {type = "object", properties = {...}}')
        if self.flags:
            for key in schema.get("properties", {}):
                if not FLAG_NAME_RE.match(key):
                    raise ValueError(f"argument {key!r} cannot be passed as --{key} (flags = true)")
        return self

    def arguments_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as the model is offered it."""
        if self.parameters is not None:
            return {"properties": {}, **self.parameters} if self.parameters.get("type") == "object" else self.parameters
        properties: dict[str, Any] = {}
        required: list[str] = []
        for key, form in (self.args or {}).items():
            if isinstance(form, str):
                prop, needed = short_property(key, form)
            else:
                prop = {k: v for k, v in form.items() if k != "optional"}
                needed = not form.get("optional", False)
            properties[key] = prop
            if needed:
                required.append(key)
        return {"type": "object", "properties": properties, "required": required}

    def argv(self, python: str) -> list[str]:
        """The command, with `python = "x.py"` spelled out as [the Python running agents, "x.py"]."""
        return list(self.command) if self.command is not None else [python, str(self.python)]


def check_tool_table(value: dict[str, CommandToolSpec]) -> dict[str, CommandToolSpec]:
    for name in value:
        check_tool_name(name)
    return value
