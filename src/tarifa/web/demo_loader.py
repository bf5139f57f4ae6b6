"""Demo data: each app may have `demo.py` with `load(*, actor)`; loaded in INSTALLED_APPS order.

Demo loaders call services (never models directly) so the demo goes through the same
rules, audit and ledger invariants as real work.
"""

import importlib

from django.apps import apps
from django.db import transaction


def demo_modules():
    for config in apps.get_app_configs():
        if not config.name.startswith("tarifa."):
            continue
        try:
            yield config.label, importlib.import_module(f"{config.name}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.demo":
                raise


def synth_modules():
    """Apps' `synth.py` (`add_arguments(parser)`, `run(*, summary, **options) -> dict`), in
    INSTALLED_APPS order: `tarifa demo synth` runs each, later ones extending what earlier made."""
    for config in apps.get_app_configs():
        if not config.name.startswith("tarifa."):
            continue
        try:
            yield config.label, importlib.import_module(f"{config.name}.synth")
        except ModuleNotFoundError as exc:
            if exc.name != f"{config.name}.synth":
                raise


@transaction.atomic
def load_demo(*, actor, stdout=None) -> dict:
    from tarifa.kernel import ownership

    summary = {}
    for label, module in demo_modules():
        with ownership.demo_loading():  # a demo branch gets the demo catalog too (kernel/ownership.py)
            result = module.load(actor=actor)
        summary[label] = result
        if stdout is not None:
            stdout.write(f"demo {label}: {result}\n")
    return summary
