"""Reads of the catalog that other apps may use."""

import datetime as dt

from django.db.models import Q

from .models import DevicePrice, PriceVersion, Tariff, Tax
from .pricing import TaxRate


def active_tariffs(service=None):
    qs = Tariff.objects.filter(archived_at__isnull=True).select_related("service", "service__service_type")
    return qs.filter(service=service) if service is not None else qs


def price_version_on(tariff, day: dt.date) -> PriceVersion | None:
    return tariff.version_on(day)


def one_time_fee(tariff, kind: str, day: dt.date):
    """The amount of the one-time fee `kind` in force on `day`, or None when not priced."""
    version = tariff.version_on(day)
    if version is None:
        return None
    row = version.one_time_fees.filter(kind=kind).first()
    return row.amount if row and row.amount > 0 else None


def applicable_taxes(*, service_type, tax_scheme=None, day: dt.date) -> list[TaxRate]:
    """The taxes charged on a service of `service_type` to a customer under `tax_scheme` on `day`."""
    qs = (Tax.objects.filter(archived_at__isnull=True)
          .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=day))
          .filter(Q(valid_to__isnull=True) | Q(valid_to__gte=day))
          .filter(Q(service_types__isnull=True) | Q(service_types=service_type)).distinct().order_by("code"))
    return [TaxRate(t.code, t.rate, t.inclusive) for t in qs if tax_scheme is None or tax_scheme.applies(t.code)]


def device_price(code: str) -> DevicePrice | None:
    """The device price list's row `code` (archived ones too: the caller decides), or None."""
    return DevicePrice.objects.filter(code=code).first() if code else None


def device_price_choices() -> list[tuple[str, str]]:
    """(code, label) of the device prices that may be newly used (not archived), by code."""
    return [(p.code, str(p)) for p in DevicePrice.objects.filter(archived_at__isnull=True).order_by("code")]
