"""What a tool is: a name, the JSON schema the model is offered, `validate(raw arguments)` -> the arguments (or a
ToolError), and `run(ctx, arguments)` -> the text the model sees. A ToolError's message goes back to the model as
the tool's result, and the turn goes on; so every error names the tool and says what to send instead.

Both the schema and the validation come from one pydantic model of the arguments. A built-in tool declares that
model (`Tool.typed`); a tool whose parameters arrive as plain JSON schema (`Tool.from_json_schema`) sends that
schema as given and gets a model built from it, so both kinds share one validator and one set of error texts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, create_model

from letta_cli.core.errors import ToolError
from letta_cli.ports import TurnContext

IGNORED = frozenset({"request_heartbeat"})  # sent by models trained on MemGPT-style tools

Run = Callable[[TurnContext, Any], Awaitable[str]]
# narrows the schema for one turn (e.g. to the agent ids that exist), so grammar-constrained servers such as
# llama.cpp can only produce valid arguments
Narrow = Callable[[TurnContext, dict[str, Any]], dict[str, Any]]


class Arguments(BaseModel):
    """The arguments of a tool, as the model must send them: no coercion ("2" is not an integer), no extras."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    parameters: dict[str, Any]  # the JSON schema of `arguments`, as sent
    run: Run
    narrow: Narrow | None = None
    _spellings: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_spellings", spellings(self.arguments))

    @classmethod
    def typed(
        cls, name: str, description: str, arguments: type[Arguments], run: Run, narrow: Narrow | None = None
    ) -> Tool:
        return cls(name, description, arguments, parameters_of(arguments), run, narrow)

    @classmethod
    def from_json_schema(
        cls, name: str, description: str, parameters: dict[str, Any], run: Run, narrow: Narrow | None = None
    ) -> Tool:
        return cls(name, description, model_of(name, parameters), parameters, run, narrow)

    @property
    def schema(self) -> dict[str, Any]:
        """The chat-completions tool definition."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def offer(self, ctx: TurnContext) -> dict[str, Any]:
        """The definition as offered in this turn (narrowed to what exists)."""
        return self.narrow(ctx, self.schema) if self.narrow else self.schema

    def validate(self, raw: str) -> BaseModel:
        """The model's arguments (JSON text) as this tool's arguments, or a ToolError saying what is wrong."""
        return self.check(self._parse(raw))

    def check(self, value: Any) -> BaseModel:
        """Arguments already parsed from JSON, validated."""
        if not isinstance(value, dict):
            raise ToolError(f"{self.name}: the arguments must be a JSON object")
        given = {k: v for k, v in value.items() if k not in IGNORED or k in self._spellings}
        for key in list(given):  # both spellings given: the current one wins
            current = self._spellings.get(key, key)
            if current != key and current in given:
                del given[key]
        try:
            return self.arguments.model_validate(given)
        except ValidationError as exc:
            raise ToolError(self._explain(given, exc)) from None

    def _parse(self, raw: str) -> Any:
        if not raw or not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            msg = getattr(exc, "msg", exc)
            raise ToolError(f"{self.name}: the arguments are not valid JSON ({msg}); send a JSON object") from None
        except RecursionError:
            raise ToolError(f"{self.name}: the arguments are nested too deeply; send a flat JSON object") from None

    def _explain(self, given: dict[str, Any], exc: ValidationError) -> str:
        """One error, in the order the model wrote its arguments; missing ones come last, all named at once."""
        errors = exc.errors()
        wrong = [e for e in errors if e["type"] != "missing"]
        if wrong:
            order = {key: i for i, key in enumerate(given)}
            first = min(wrong, key=lambda e: order.get(str(e["loc"][0]) if e["loc"] else "", len(order)))
            return f"{self.name}: {self._wrong(first, given)}"
        missing = [str(e["loc"][0]) for e in errors if e["loc"]]
        return f"{self.name}: missing argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}"

    def _wrong(self, error: Any, given: dict[str, Any]) -> str:
        if not error["loc"]:  # about the arguments as a whole
            return f"the arguments are wrong: {error['msg']}"
        key = str(error["loc"][0])
        if error["type"] == "extra_forbidden":
            return f"unexpected argument {key!r}; it takes {', '.join(self.parameters.get('properties', {}))}"
        prop = self.parameters.get("properties", {}).get(self._spellings.get(key, key), {})
        expected = EXPECTED.get(prop.get("type", ""))
        if expected is None or not error["type"].endswith("_type"):
            return f"argument {key!r}: {error['msg']}"
        if prop.get("type") == "array":
            expected += f" of {prop.get('items', {}).get('type', 'value')}s"
        if len(error["loc"]) > 1:  # an item of a list
            return f"argument {key!r} must be {expected}; item {error['loc'][1]} is {json_type(error['input'])}"
        return f"argument {key!r} must be {expected}, got {json_type(given[key])}"


EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
}
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def spellings(model: type[BaseModel]) -> dict[str, str]:
    """Every key the arguments model accepts -> the parameter it fills (older spellings included)."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        param = info.alias or name
        out[param] = param
        if isinstance(info.validation_alias, AliasChoices):
            out |= {choice: param for choice in info.validation_alias.choices if isinstance(choice, str)}
    return out


# what the model is shown of each parameter, in this order
_KEYS = ("type", "items", "enum", "minLength", "description")


def parameters_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of an arguments model, as sent: types, items, enums and descriptions only (no titles,
    no defaults: tokens matter, and the descriptions say what a default does)."""
    schema = model.model_json_schema()

    def plain(node: dict[str, Any]) -> dict[str, Any]:
        if "type" not in node:  # unions, references: not something small models fill in reliably
            raise TypeError(f"{model.__name__}: a parameter needs one plain JSON type, got {node}")
        return {k: plain(node[k]) if k == "items" else node[k] for k in _KEYS if k in node}

    properties = {name: plain(prop) for name, prop in schema.get("properties", {}).items()}
    return {"type": "object", "properties": properties, "required": schema.get("required", [])}


_PYTHON = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict}


def model_of(name: str, parameters: dict[str, Any]) -> type[BaseModel]:
    """An arguments model for a plain JSON schema (a flat object), so it validates like a typed tool. Fields
    are named by position and aliased to the schema's keys, which need not be Python identifiers."""
    required = set(parameters.get("required", []))
    fields: dict[str, Any] = {}
    for i, (key, prop) in enumerate(parameters.get("properties", {}).items()):
        kind: Any = _PYTHON.get(prop.get("type", ""), Any)
        if prop.get("type") == "array":
            kind = list[_PYTHON.get(prop.get("items", {}).get("type", ""), Any)]  # type: ignore[misc]
        fields[f"p{i}"] = (kind, Field(... if key in required else None, alias=key))
    return create_model(f"{name}_arguments", __base__=Arguments, **fields)
