"""What an item's `catalog_ref` may name: a code of the catalog's device price list.

The warehouse and the catalog sit side by side on one layer, so inventory may not import the
catalog (import-linter). The layer above both (subscriptions, which turns devices into money)
tells inventory how to look codes up, at start-up, with `register_catalog_refs`:

    register_catalog_refs(describe=lambda code: ..., choices=lambda: [(code, label), ...])

`describe(code)` answers None for an unknown code, else (label, archived). Until something is
registered (inventory alone, without subscriptions), a reference is taken as typed.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from tarifa.kernel.errors import ValidationFailed


@dataclass(frozen=True)
class CatalogRefs:
    describe: Callable[[str], tuple[str, bool] | None]
    choices: Callable[[], list[tuple[str, str]]]


_registered: CatalogRefs | None = None


def register_catalog_refs(*, describe, choices) -> None:
    global _registered
    _registered = CatalogRefs(describe=describe, choices=choices)


def registered() -> bool:
    return _registered is not None


def choices() -> list[tuple[str, str]]:
    """(code, label) of the references a new item may take; empty when nothing is registered."""
    return _registered.choices() if _registered is not None else []


def describe(code: str) -> tuple[str, bool] | None:
    """(label, archived) of the device price `code`; None when unknown or nothing is registered."""
    return _registered.describe(code) if _registered is not None and code else None


def check(code: str, *, current: str = "") -> str:
    """`code` when it names a device price that may be used; "" stays "" (no price). An unknown
    code is a field error; an archived one too, unless the item has it already (`current`)."""
    code = (code or "").strip()
    if not code or _registered is None:
        return code
    found = _registered.describe(code)
    if found is None:
        raise ValidationFailed(_("Unknown catalog reference %(code)r: no device price has this code.")
                               % {"code": code}, code="unknown_catalog_ref",
                               fields={"catalog_ref": [_("No device price with code %(code)s.") % {"code": code}]})
    _label, archived = found
    if archived and code != current:
        raise ValidationFailed(_("The device price %(code)s is archived.") % {"code": code}, code="archived",
                               fields={"catalog_ref": [_("Archived: pick a current device price.")]})
    return code
