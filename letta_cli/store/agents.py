"""Agent definitions: agents.d/<name>.toml, loaded, validated, matched by tags and saved.

The folder is the source of truth: files are read fresh (cached by mtime) and only the file the user
asked to change is ever written.
"""

from __future__ import annotations

import difflib
import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from letta_cli.core.config import describe_validation, load_toml
from letta_cli.core.errors import Conflict, InvalidFile, NotFound
from letta_cli.core.models import AgentDef
from letta_cli.core.names import check_name
from letta_cli.store.fsio import atomic_write
from letta_cli.store.workspace import Workspace

# (path) -> (mtime_ns, size, AgentDef): parsing 10,000 TOML files is the cost worth avoiding
_cache: dict[Path, tuple[int, int, AgentDef]] = {}


class AgentExists(Conflict):
    """Saving a new agent under a name that is taken."""

    def __init__(self, name: str, path: Path):
        super().__init__(f"agent {name!r} already exists ({path})")
        self.name = name


@dataclass
class LoadReport:
    agents: list[AgentDef]
    errors: list[str]  # one line per broken file


def parse_agent_file(path: Path) -> AgentDef:
    st = path.stat()
    hit = _cache.get(path)
    if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    data = load_toml(path)
    try:
        agent = AgentDef.model_validate(data)
    except ValidationError as exc:
        raise InvalidFile(describe_validation(path, exc)) from None
    if agent.name != path.stem:
        raise InvalidFile(f"{path}: name {agent.name!r} does not match the file name {path.stem!r}")
    _cache[path] = (st.st_mtime_ns, st.st_size, agent)
    return agent


def dump_agent(agent: AgentDef) -> str:
    """TOML text of an agent, without the defaults that would only add noise to a hand-edited file."""
    data = agent.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data = {"version": agent.version, "name": agent.name, **data}
    return tomli_w.dumps(data, multiline_strings=True)


def merge_into_existing(old_text: str, new_text: str) -> str:
    """The new definition, written into the user's file: only keys whose values differ change, so comments
    and layout of a hand-edited file stay (tomlkit keeps them)."""
    import tomlkit

    try:
        doc = tomlkit.parse(old_text)
    except tomlkit.exceptions.ParseError:
        return new_text  # the old file was broken anyway: replace it
    _merge_table(doc, tomlkit.parse(new_text))
    return tomlkit.dumps(doc)


def _merge_table(old: Any, new: Any) -> None:
    for key in [k for k in old if k not in new]:
        del old[key]
    for key, value in new.items():
        if key in old and isinstance(old[key], dict) and isinstance(value, dict):
            _merge_table(old[key], value)
        elif key not in old or _plain(old[key]) != _plain(value):
            old[key] = value


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


class AgentStore:
    def __init__(self, ws: Workspace):
        self.ws = ws

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.ws.agents_dir)
        except FileNotFoundError:
            return []
        return sorted(e[:-5] for e in entries if e.endswith(".toml") and not e.startswith("."))

    def load_all(self) -> LoadReport:
        gc.disable()  # thousands of small models: the collector's passes cost more than the parsing
        try:
            return self._load_all()
        finally:
            gc.enable()

    def _load_all(self) -> LoadReport:
        agents, errors = [], []
        for name in self.names():
            try:
                agents.append(parse_agent_file(self.ws.agents_dir / f"{name}.toml"))
            except InvalidFile as exc:
                errors.append(str(exc))
            except OSError as exc:
                errors.append(f"{self.ws.agents_dir / (name + '.toml')}: {exc.strerror}")
        return LoadReport(agents, errors)

    def exists(self, name: str) -> bool:
        return self.ws.agent_file(name).is_file()

    def get(self, name: str) -> AgentDef:
        path = self.ws.agent_file(name)
        if not path.is_file():
            raise NotFound(f"no agent named {name!r}{self.suggest(name)}")
        return parse_agent_file(path)

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)
        return f" (did you mean {', '.join(close)}?)" if close else ""

    def matching(self, tags: list[str]) -> LoadReport:
        """The agents having every tag. A file not parsed before that cannot have them (see could_have_tags) is
        read but not parsed, so only the broken files that might match are reported."""
        gc.disable()  # as in load_all
        try:
            agents, errors = [], []
            for name in self.names():
                path = self.ws.agents_dir / f"{name}.toml"
                try:
                    if path not in _cache and not could_have_tags(path.read_bytes(), tags):
                        continue
                    agent = parse_agent_file(path)
                except InvalidFile as exc:
                    errors.append(str(exc))
                    continue
                except OSError as exc:
                    errors.append(f"{path}: {exc.strerror}")
                    continue
                if agent.has_tags(tags):
                    agents.append(agent)
            return LoadReport(agents, errors)
        finally:
            gc.enable()

    def save(self, agent: AgentDef, *, overwrite: bool = False) -> Path:
        path = self.ws.agent_file(agent.name)
        if path.exists() and not overwrite:
            raise AgentExists(agent.name, path)
        self.ws.agents_dir.mkdir(parents=True, exist_ok=True)
        text = dump_agent(agent)
        if path.exists():
            text = merge_into_existing(path.read_text(encoding="utf-8"), text)
        atomic_write(path, text)
        return path

    def save_file(self, name: str, source: Path) -> Path:
        """Replace agent `name`'s file with `source` byte for byte (a person's edit, comments and all), once
        it parses as that agent's definition; InvalidFile (naming `source`) if it does not."""
        path = self.ws.agent_file(name)
        if source.stem != name:
            raise InvalidFile(f"{source}: the file name must be {name}.toml")
        parse_agent_file(source)
        atomic_write(path, source.read_bytes())
        return path

    def delete(self, name: str) -> Path:
        path = self.ws.agent_file(check_name(name))
        if not path.is_file():
            raise NotFound(f"no agent named {name!r}{self.suggest(name)}")
        path.unlink()
        return path


def could_have_tags(data: bytes, tags: list[str]) -> bool:
    """False only if the TOML text cannot hold every tag as a string: 10x faster than parsing it (a
    10,000-agent `list --tag`). Without escapes or multi-line strings, a string's value is written
    literally between quotes, so tag t appears as "t" or 't' (tags never hold quotes: core/names)."""
    if b"\\" in data or b'"""' in data or b"'''" in data:
        return True
    for tag in tags:
        t = tag.encode()
        if b'"' + t + b'"' not in data and b"'" + t + b"'" not in data:
            return False
    return bool(tags)
