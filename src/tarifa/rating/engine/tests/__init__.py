"""Tests of the CGRateS-compatible rating engine, with small shared helpers.

The sample tariff plans live in ``shared/interop/cgrates`` next to the repository
(``TARIFA_CGRATES_INTEROP`` overrides the location).  Tests that need them are
skipped, loudly, when the folder cannot be found.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest

from tarifa.rating.engine import TariffPlan, load_directory, rate


def _find_interop() -> Path | None:
    override = os.environ.get("TARIFA_CGRATES_INTEROP")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "interop" / "cgrates"
        if candidate.is_dir():
            return candidate
    return None


INTEROP = _find_interop()

# Outside CI a checkout without ../shared skips these; in CI (CI set) they must run, and fail if missing.
needs_interop = pytest.mark.skipif(
    INTEROP is None and not os.environ.get("CI"), reason="shared/interop/cgrates sample tariff plans not found"
)


@cache
def sample_plan(name: str) -> TariffPlan:
    """One of the CGRateS sample plans, loaded once per test session."""
    assert INTEROP is not None
    return load_directory(INTEROP / name)


def write_plan(directory: Path, **files: str) -> Path:
    """Write CSV files (keyword = file stem, e.g. ``Rates=...``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, text in files.items():
        (directory / f"{stem}.csv").write_text(text.strip() + "\n", encoding="utf-8")
    return directory


def at(*args: int, tz=UTC) -> datetime:
    """An aware datetime, UTC unless told otherwise."""
    return datetime(*args, tzinfo=tz)


def rate6(plan: TariffPlan, **kwargs):
    """``rate`` with 6 engine decimals, the value CGRateS's own unit tests run with
    (``globalRoundingDecimals = 6`` in engine/calldesc.go)."""
    kwargs.setdefault("rounding_decimals", 6)
    return rate(plan, **kwargs)
