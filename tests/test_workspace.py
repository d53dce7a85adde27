"""Finding the workspace like git finds a repo, and setting one up, through the library."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from letta_cli.core.config import CONFIG_TEMPLATE, Limits, Price, WorkspaceConfig, load_config
from letta_cli.core.errors import UsageError
from letta_cli.core.models import AgentDef, AgentLimits, AgentMemory, PrivateBlock, ToolRules
from letta_cli.store.workspace import Workspace, init_workspace


@pytest.fixture(autouse=True)
def no_agents_home(monkeypatch):
    monkeypatch.delenv("AGENTS_HOME", raising=False)


def has_marker(folder: Path) -> bool:
    return (folder / "agents.d").is_dir() or (folder / "agents.toml").is_file()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/outer/agents.d, tmp/outer/inner/agents.toml, tmp/outer/inner/src/deep (no markers)."""
    if any(has_marker(folder) for folder in tmp_path.parents):
        pytest.skip("a folder above the test's temporary folder is itself a workspace")
    (tmp_path / "outer" / "agents.d").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "src" / "deep").mkdir(parents=True)
    (tmp_path / "outer" / "inner" / "agents.toml").write_text("version = 1\n")
    return tmp_path


def test_explicit_folder_wins_over_everything(tree: Path, monkeypatch):
    monkeypatch.setenv("AGENTS_HOME", str(tree / "outer"))
    (tree / "anywhere").mkdir()
    found = Workspace.find(tree / "anywhere", cwd=tree / "outer" / "inner")
    assert found.root == tree / "anywhere"


def test_explicit_relative_folder_is_made_absolute(tree: Path, monkeypatch):
    monkeypatch.chdir(tree / "outer")
    assert Workspace.find("inner").root == tree / "outer" / "inner"


def test_agents_home_wins_over_the_upward_search(tree: Path, monkeypatch):
    monkeypatch.setenv("AGENTS_HOME", str(tree / "outer"))
    assert Workspace.find(cwd=tree / "outer" / "inner" / "src").root == tree / "outer"


def test_empty_agents_home_is_ignored(tree: Path, monkeypatch):
    monkeypatch.setenv("AGENTS_HOME", "")
    assert Workspace.find(cwd=tree / "outer" / "inner" / "src").root == tree / "outer" / "inner"


def test_nearest_folder_with_agents_toml_is_found(tree: Path):
    assert Workspace.find(cwd=tree / "outer" / "inner" / "src" / "deep").root == tree / "outer" / "inner"


def test_nearest_folder_with_agents_d_is_found(tree: Path):
    (tree / "outer" / "inner" / "agents.toml").unlink()
    assert Workspace.find(cwd=tree / "outer" / "inner" / "src" / "deep").root == tree / "outer"


def test_the_workspace_folder_itself_is_found(tree: Path):
    assert Workspace.find(cwd=tree / "outer").root == tree / "outer"


def test_markers_of_the_wrong_kind_do_not_count(tree: Path):
    deep = tree / "outer" / "inner" / "src" / "deep"
    (deep / "agents.d").write_text("a file, not a folder")
    (deep / "agents.toml").mkdir()  # a folder, not a file
    assert Workspace.find(cwd=deep).root == tree / "outer" / "inner"


def test_without_markers_the_current_folder_is_used(tree: Path, monkeypatch):
    bare = tree / "bare" / "sub"
    bare.mkdir(parents=True)
    assert Workspace.find(cwd=bare).root == bare
    monkeypatch.chdir(bare)
    assert Workspace.find().root == bare


def test_found_through_a_symlink_gives_the_real_folder(tree: Path):
    link = tree / "link"
    link.symlink_to(tree / "outer" / "inner" / "src")
    assert Workspace.find(cwd=link).root == tree / "outer" / "inner"


def test_paths_inside_a_workspace(tmp_path: Path):
    ws = Workspace(tmp_path)
    assert ws.agents_dir == tmp_path / "agents.d"
    assert ws.config_path == tmp_path / "agents.toml"
    assert ws.state_dir == tmp_path / ".agents"
    assert ws.agent_file("helper") == tmp_path / "agents.d" / "helper.toml"
    with pytest.raises(UsageError):
        ws.agent_file("../helper")
    with pytest.raises(UsageError):
        ws.history_file("a/b")


# ------------------------------------------------------------------------------------------------ init


def test_init_creates_the_three_parts(tmp_path: Path):
    ws, created = init_workspace(tmp_path / "new" / "team")
    assert created == ["agents.d/", "agents.toml", ".agents/"]
    assert ws.root == tmp_path / "new" / "team"
    assert ws.agents_dir.is_dir() and ws.is_initialized()
    assert (ws.state_dir / ".gitignore").read_text().splitlines()[-1] == "*"
    assert ws.state_dir.stat().st_mode & 0o077 == 0  # state may hold private conversations
    assert Workspace.find(cwd=ws.root).root == ws.root


def test_init_completes_a_partial_workspace_and_keeps_what_exists(tmp_path: Path):
    (tmp_path / "agents.toml").write_text('model = "mine"\n')
    _ws, created = init_workspace(tmp_path)
    assert created == ["agents.d/", ".agents/"]
    assert (tmp_path / "agents.toml").read_text() == 'model = "mine"\n'
    assert init_workspace(tmp_path)[1] == []


def test_init_refuses_a_file(tmp_path: Path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        init_workspace(tmp_path / "plain")


def test_config_template_is_valid_and_sets_nothing(tmp_path: Path):
    ws, _ = init_workspace(tmp_path)
    assert ws.config == WorkspaceConfig()
    assert load_config(tmp_path / "missing.toml") == WorkspaceConfig()


def test_config_template_comments_show_the_real_defaults():
    """Each `# key = value` line under [limits] must be the default, so the template never lies."""
    limits = CONFIG_TEMPLATE.split("[limits]", 1)[1].split("[prices", 1)[0]
    shown = dict(re.findall(r"^# (\w+) = ([\d.]+)", limits, flags=re.M))
    defaults = Limits()
    assert set(shown) == set(Limits.model_fields)
    for key, value in shown.items():
        default = getattr(defaults, key)
        if default is not None:  # token budgets are unset by default; the template shows an example
            assert float(value) == default, key


# ------------------------------------------------------------------------------------------------ docs


def doc_table_rows(section: str) -> dict[str, str]:
    """`| \\`key\\` | type | default | ...` rows of a markdown table -> {key: default cell}."""
    return dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| ([^|]+) \|", section, flags=re.M))


FORMATS_DOC = Path(__file__).resolve().parent.parent / "docs" / "formats.md"


def test_formats_doc_shows_every_limit_with_its_default():
    limits = FORMATS_DOC.read_text().split("### `[limits]`", 1)[1].split("###", 1)[0]
    rows = doc_table_rows(limits)
    assert set(rows) == set(Limits.model_fields)
    for key, cell in rows.items():
        default = getattr(Limits(), key)
        shown = "unset" if default is None else f"`{int(default) if float(default).is_integer() else default}`"
        assert cell.strip() == shown, key


@pytest.mark.parametrize("model", [WorkspaceConfig, Price, AgentDef, ToolRules, AgentMemory, PrivateBlock, AgentLimits])
def test_formats_doc_names_every_field(model):
    doc = FORMATS_DOC.read_text()
    forms = ("`{}`", "[{}]", "[{}.", ".{}.")  # `key`, [table], [table.x], [memory.blocks.x]
    missing = [f for f in model.model_fields if not any(form.format(f) in doc for form in forms)]
    assert not missing, f"{model.__name__} fields not documented in docs/formats.md: {missing}"
