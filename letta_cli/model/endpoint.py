"""Which endpoint an agent's model calls go to: agent file, then agents.toml, then OPENAI_* variables, else
the embedded local model."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from letta_cli.core.config import DEFAULT_MODEL
from letta_cli.core.errors import AgentsError, ModelFailure
from letta_cli.core.models import AgentDef
from letta_cli.core.secrets import remember, remember_url
from letta_cli.store.workspace import Workspace

NO_KEY = "not-needed"  # compatible servers often need no key, but the SDK insists on one


class NoEndpoint(AgentsError):
    exit_code = ModelFailure.exit_code


@dataclass(frozen=True)
class Endpoint:
    model: str
    base_url: str | None
    api_key: str

    def __repr__(self) -> str:  # never print the key
        return f"Endpoint(model={self.model!r}, base_url={self.base_url!r})"


def resolve_endpoint(ws: Workspace, agent: AgentDef, env: Mapping[str, str] | None = None) -> Endpoint:
    """Agent file, then agents.toml, then OPENAI_* variables; "local" (or nothing configured but the local
    extra installed) means the embedded model server. This may block for minutes (it starts that server and
    waits for it): never call it on an event loop (the scheduler runs it in a thread of its own).
    `env`: the variables to read (the scheduler daemon passes the sender's); None: this process's."""
    env = os.environ if env is None else env
    cfg = ws.config
    key_env = agent.api_key_env or cfg.api_key_env
    api_key = env.get(key_env) or ""
    base_url = agent.base_url or cfg.base_url or env.get("OPENAI_BASE_URL") or None
    model = agent.model or cfg.model or env.get("AGENTS_MODEL")
    remember(api_key)  # whatever the variable is called, its value is blanked from every text from now on
    remember_url(base_url)
    auto_local = model is None and not api_key and not base_url and not env.get("AGENTS_NO_LOCAL_DEFAULT")
    if model == "local" or (auto_local and _local_available()):
        from letta_cli.model import local as localmodel

        url, local_name = localmodel.ensure_server(ws)
        return Endpoint(local_name, url, NO_KEY)
    if not api_key and not base_url:
        raise NoEndpoint(
            f"no model endpoint for agent {agent.name!r}: set {key_env} (OpenAI), or OPENAI_BASE_URL "
            "(any OpenAI-compatible server), or install the local model with `scripts/setup.sh` "
            'and use model = "local"'
        )
    return Endpoint(model or DEFAULT_MODEL, base_url, api_key or NO_KEY)


def _local_available() -> bool:
    try:
        from letta_cli.model import local_setup
    except ImportError:
        return False
    return local_setup.is_available()
