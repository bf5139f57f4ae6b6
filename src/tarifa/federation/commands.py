"""Subcommands of `tarifa federation` that higher apps add (journals: `reconcile`; settlement: `settle`)
without federation importing them: an app registers in its AppConfig.ready()."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    arguments: Callable  # arguments(parser): add the subcommand's options
    run: Callable  # run(command, **options): the BaseCommand instance (for stdout) and the parsed options


_subcommands: dict[str, Subcommand] = {}


def register(name: str, *, help: str, arguments: Callable, run: Callable) -> None:
    _subcommands[name] = Subcommand(name, help, arguments, run)


def registered() -> list[Subcommand]:
    return [_subcommands[name] for name in sorted(_subcommands)]


def get(name: str) -> Subcommand | None:
    return _subcommands.get(name)
