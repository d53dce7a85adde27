"""The start-up shortcut in cli/main.py (import only the invoked command's module) must match reality."""

import importlib

import typer

from letta_cli.cli.main import COMMAND_MODULES, command_name


def registered(module_name: str) -> set[str]:
    app = typer.Typer()
    importlib.import_module(f"letta_cli.cli.{module_name}").register(app)
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return names | {g.name or g.typer_instance.info.name for g in app.registered_groups}


def test_every_command_is_mapped_to_the_module_that_registers_it():
    for module in set(COMMAND_MODULES.values()):
        assert registered(module) == {c for c, m in COMMAND_MODULES.items() if m == module}, module


def test_command_name_skips_global_options():
    assert command_name(["-w", "list", "send", "x"]) == "send"
    assert command_name(["--workspace", "/tmp/x", "-v", "list", "--tag", "a"]) == "list"
    assert command_name(["-q", "--help"]) is None
