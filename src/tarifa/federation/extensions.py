"""What the apps built on federation (reference releases, journals, …) add to its status (subcommands of
`tarifa federation`: commands.py).

They register at `ready()`; federation itself never imports them (they sit above it, pyproject layers).
- `problem_source(func)`: `func() -> list[dict]` of problems ({code, stream, since, message}) listed with the
  stream problems by `tarifa federation status`, the status API and the dashboard tile.
- `status_entry(name, func)`: `func() -> JSON-able`, added under `name` to the status output and API.
"""

from collections.abc import Callable

_problem_sources: list[Callable[[], list[dict]]] = []
_status_entries: dict[str, Callable[[], object]] = {}


def problem_source(func):
    if func not in _problem_sources:
        _problem_sources.append(func)
    return func


def status_entry(name: str, func) -> None:
    _status_entries[name] = func


def extra_problems() -> list[dict]:
    return [p for source in _problem_sources for p in source()]


def extra_status() -> dict:
    return {name: func() for name, func in _status_entries.items()}

