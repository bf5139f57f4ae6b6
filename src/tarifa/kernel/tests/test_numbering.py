"""Number series: one owner per series, and every caller uses its own app's registered series.

A number's prefix tells the reader what it is; two record kinds sharing a series (shifts and
subscriptions both HQ-S…) made a receipt read "Shift HQ-S0000016". The source is read as
text (ast), so this test needs no import of the apps above the kernel.
"""

import ast
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tarifa.kernel import numbering
from tarifa.kernel.errors import ValidationFailed

SRC = Path(numbering.__file__).resolve().parents[1]  # src/tarifa
NUMBERING_CALLS = {"next_number", "_reserve"}  # _reserve: the synthetic-data generators take blocks of numbers


def _constants(tree) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def numbering_calls():
    """(series or None when computed, app, where) for every numbering call outside tests."""
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if "tests" in rel.parts or "migrations" in rel.parts or rel.parts[0] == "kernel":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in NUMBERING_CALLS:
                continue
            arg = node.args[0]
            series = None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                series = arg.value
            elif isinstance(arg, ast.Name) and arg.id in constants:
                series = constants[arg.id]
            calls.append((series, rel.parts[0], f"{rel}:{node.lineno}"))
    return calls


def test_every_numbering_call_uses_a_series_registered_to_its_own_app():
    calls = numbering_calls()
    assert len(calls) >= 12, calls  # the scan finds the callers (customers, accounts, payments, shifts, …)
    # The synthetic-data generators (synth.py) make customers, accounts and subscriptions at once:
    # they may take blocks of any registered series; everyone else only their own app's.
    wrong = [(series, app, where, numbering.owner_of(series)) for series, app, where in calls
             if series is not None and (numbering.owner_of(series) is None
                                        or (numbering.owner_of(series) != app and "synth.py" not in where))]
    assert wrong == [], "series used by an app that does not own it (or not registered): " + repr(wrong)


def test_shifts_and_subscriptions_have_different_series():
    shift_series = {s for s, _a, w in numbering_calls() if w.startswith("payments/services/cashdesk.py")}
    assert "S" not in shift_series and "SH" in shift_series
    assert numbering.owner_of("S") == "subscriptions" and numbering.owner_of("SH") == "payments"


def test_a_series_registered_twice_stops_the_process():
    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        numbering._index([("S", "subscriptions", "subscriptions"), ("S", "payments", "cashier shifts")])
    with pytest.raises(ImproperlyConfigured):
        numbering._index([("s1", "x", "lower case and digits")])


def test_an_invoice_series_may_not_take_another_records_series():
    assert numbering.check_configurable_series("I") == "I"
    assert numbering.check_configurable_series("INV") == "INV"
    for taken in ("P", "S", "SH", "CN", "C", "A"):
        with pytest.raises(ValidationFailed) as err:
            numbering.check_configurable_series(taken)
        assert err.value.code == "reserved_series"
