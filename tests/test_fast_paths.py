"""The start-up fast paths of #18: the tag prefilter of AgentStore.matching, the plain table for pipes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from letta_cli.core.models import AgentDef
from letta_cli.store.agents import AgentStore, could_have_tags
from letta_cli.store.workspace import Workspace
from tests.conftest import CLI
from tests.harness import write_agent

TEXTS = [
    'name = "a"\ntags = ["x", "y"]\n',
    "name = 'a'\ntags = ['x']\n",
    'name = "a"\ntags = ["xy", "y"]\n',
    'name = "a"\ntags = ["\\u0078"]\n',  # an escape spells x
    'name = "a"\ntags = ["""\nx"""]\n',  # the newline after """ is trimmed: the value is x
    "name = 'a'\ntags = ['''x''']\n",
    'name = "a"\ndescription = "about x"\ntags = ["y"]\n',
    'name = "a"\n',
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("tags", [["x"], ["x", "y"], ["y"], ["z"]])
def test_the_prefilter_never_skips_a_file_that_has_the_tags(text: str, tags: list[str]):
    has = set(tags) <= set(tomllib.loads(text).get("tags", []))
    if has:
        assert could_have_tags(text.encode(), tags)


def test_the_prefilter_skips_files_without_the_quoted_tag():
    assert not could_have_tags(b'name = "a"\ntags = ["xy"]\ndescription = "x marks"\n', ["x"])
    assert not could_have_tags(b'name = "a"\ntags = ["x"]\n', [])


def test_matching_reports_broken_files_that_might_match_and_finds_the_rest(ws: Path):
    write_agent(ws, "a1", tags=["x"])
    write_agent(ws, "a2", tags=["y"])
    (ws / "agents.d" / "broken.toml").write_text('name = "broken"\ntags = ["x"\n')
    (ws / "agents.d" / "other.toml").write_text('name = "other"\ntags = ["y"\n')
    report = AgentStore(Workspace(ws)).matching(["x"])
    assert [a.name for a in report.agents] == ["a1"]
    assert len(report.errors) == 1 and "broken.toml" in report.errors[0]
    assert isinstance(report.agents[0], AgentDef)


def test_list_piped_is_a_plain_table_without_rich(offline_cli: CLI, ws: Path):
    write_agent(ws, "alice", tags=["team", "x"])
    write_agent(ws, "bob", extra='description = "line one\\nline two \\u001b[31m"')
    res = offline_cli.ok("list")
    lines = res.out.splitlines()
    assert lines[0].split() == ["name", "|", "model", "|", "tags", "|", "description"]
    assert set(lines[1]) <= {"-", "+"}
    assert lines[2].split(" | ")[0].strip() == "alice" and "team,x" in lines[2]
    assert "line one line two" in lines[3] and "\x1b" not in res.out
