"""Agent definitions: agents.d/<name>.toml, loaded, validated, matched by tags and saved.

The folder is the source of truth: files are read fresh (cached by mtime) and only the file the user
asked to change is ever written. Every change holds the agents.d/ folder's lock (a flock on the folder
itself: no lock file) while it re-reads the file, changes it and writes it atomically, so two shells
changing one agent never lose an update; a new agent's file is linked into place, never over another.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from letta_cli.core.config import describe_validation, load_toml
from letta_cli.core.errors import Conflict, InvalidFile, NotFound
from letta_cli.core.models import AgentDef
from letta_cli.core.names import check_name
from letta_cli.store.fsio import atomic_write, fsync_dir, locked_folder, storage_errors, write_tmp
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


class AgentChanged(Conflict):
    """A person's edit of a file that changed (or was deleted) while the editor was open."""


def parse_agent_file(path: Path, *, fresh: bool = False) -> AgentDef:
    """The agent in `path`. fresh=True skips the cache (a change must start from what is on disk now: file
    times are coarse, so two writes in one clock tick can leave the same mtime and size)."""
    st = path.stat()
    hit = None if fresh else _cache.get(path)
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
        self._depth = 0  # how deep this store holds the agents lock (it is re-entrant per store)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock every change to agents.d/ takes. Re-entrant within this store, so a verb that
        changes several agents (blocks attach) checks and changes them all under one hold."""
        if self._depth or not self.ws.agents_dir.is_dir():  # held already; or no agent to change yet
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with locked_folder(self.ws.agents_dir):
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

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
            path = self.ws.agents_dir / f"{name}.toml"
            try:
                agents.append(parse_agent_file(path))
            except InvalidFile as exc:
                errors.append(str(exc))
            except FileNotFoundError:  # deleted while we listed
                pass
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror}")
        return LoadReport(agents, errors)

    def exists(self, name: str) -> bool:
        return self.ws.agent_file(name).is_file()

    def get(self, name: str, *, fresh: bool = False) -> AgentDef:
        path = self.ws.agent_file(name)
        if not path.is_file():
            raise NotFound(f"no agent named {name!r}{self.suggest(name)}")
        return parse_agent_file(path, fresh=fresh)

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

    def update(self, name: str, change: Callable[[AgentDef], AgentDef]) -> AgentDef:
        """One locked read-modify-write: `change` gets the definition as it is on disk now; an unchanged
        result writes nothing."""
        with self.locked():
            agent = self.get(name, fresh=True)
            new = change(agent)
            if new != agent:
                self.save(new, overwrite=True)
            return new

    def save(self, agent: AgentDef, *, overwrite: bool = False) -> Path:
        path = self.ws.agent_file(agent.name)
        with storage_errors(str(self.ws.agents_dir)):
            self.ws.agents_dir.mkdir(parents=True, exist_ok=True)
        text = dump_agent(agent)
        with self.locked():
            if not path.exists():
                self._create(agent.name, path, text.encode())
            elif not overwrite:
                raise AgentExists(agent.name, path)
            else:
                with storage_errors(str(path)):
                    atomic_write(path, merge_into_existing(path.read_text(encoding="utf-8"), text))
        return path

    def _create(self, name: str, path: Path, data: bytes) -> None:
        """Link a new file into place: if another process made the agent first, theirs stays."""
        with storage_errors(str(path)):
            tmp = write_tmp(path.parent, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise AgentExists(name, path) from None
            finally:
                os.unlink(tmp)
            fsync_dir(path.parent)

    def save_file(self, name: str, source: Path, *, expected: bytes | None = None) -> Path:
        """Replace agent `name`'s file with `source` byte for byte (a person's edit, comments and all), once
        it parses as that agent's definition; InvalidFile (naming `source`) if it does not. With `expected`
        (the file as the editor opened it), AgentChanged if the file is no longer that: deleted, or changed
        by another command meanwhile."""
        path = self.ws.agent_file(name)
        if source.stem != name:
            raise InvalidFile(f"{source}: the file name must be {name}.toml")
        parse_agent_file(source, fresh=True)
        with self.locked():
            if expected is not None:
                try:
                    now = path.read_bytes()
                except FileNotFoundError:
                    raise AgentChanged(f"agent {name!r} was deleted while the editor was open") from None
                if now != expected:
                    raise AgentChanged(f"{path} was changed by another command while the editor was open")
            with storage_errors(str(path)):
                atomic_write(path, source.read_bytes())
        return path

    def delete(self, name: str) -> Path:
        path = self.ws.agent_file(check_name(name))
        with self.locked():
            if not path.is_file():
                raise NotFound(f"no agent named {name!r}{self.suggest(name)}")
            with storage_errors(str(path)):
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
