"""No management command of the project overrides a method of Django's BaseCommand other than
`handle` and `add_arguments` (issue 10 item 18: `tarifa ledger`'s `check` subcommand method replaced
BaseCommand.check, the system check Django runs before every command, so every `tarifa ledger …`
ran the whole ledger check first)."""

import ast
from pathlib import Path

from django.core.management.base import BaseCommand

ALLOWED = {"handle", "add_arguments", "help", "requires_system_checks", "requires_migrations_checks",
           "suppressed_base_arguments", "output_transaction", "stealth_options"}


def command_classes():
    root = Path(__file__).resolve().parents[1] / "src" / "tarifa"
    for path in sorted(root.glob("*/management/commands/*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == "Command":
                yield path, node


def test_commands_are_found():
    assert {p.stem for p, _ in command_classes()} >= {"ledger", "billing", "rating", "usage", "payments"}


def test_no_command_overrides_basecommand_methods():
    base = {name for name in dir(BaseCommand) if not name.startswith("__")}
    clashes = []
    for path, cls in command_classes():
        for node in cls.body:
            names = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            clashes += [f"{path.parent.parent.parent.name}/{path.name}: {n}" for n in names if n in base - ALLOWED]
    assert not clashes, clashes
