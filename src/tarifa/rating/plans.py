"""Tariff plans from the database into the engine, cached per tenant and plan version.

`plan_for(tenant)` compiles the tenant's live rows (archived ones left out) into an
engine `TariffPlan` once per plan version: every service that changes a tenant's plan
bumps `RatingTenant.plan_version` in its own transaction, so a process sees the new
plan on its next call (one indexed read of the version) and never a half-written one.
Rows are read in creation order (time-ordered ids): CGRateS breaks ties by definition
order, and the importer creates rows in file order.
"""

import threading
from decimal import Decimal

from django.db.models import F

from tarifa.kernel.clock import now
from tarifa.kernel.errors import NotFound, ValidationFailed

from . import engine
from .models import (ANY, Destination, DestinationPrefix, DestinationRate, Rate, RateSlot, RatingPlanBinding,
                     RatingProfile, RatingTenant, Timing)

_lock = threading.Lock()
_cache: dict[str, tuple[tuple, engine.TariffPlan]] = {}


def _dec(value) -> Decimal:
    return Decimal(value).normalize() if value is not None else Decimal(0)


def build_plan(tenant: RatingTenant) -> engine.TariffPlan:
    """Compile the tenant's live rows; ValidationFailed `plan_invalid` names what is wrong."""
    live = {"tenant": tenant, "archived_at__isnull": True}
    prefixes: dict = {}
    for dest_id, prefix in (DestinationPrefix.objects.filter(destination__tenant=tenant,
                                                             destination__archived_at__isnull=True)
                            .order_by("id").values_list("destination_id", "prefix")):
        prefixes.setdefault(dest_id, []).append(prefix)
    slots: dict = {}
    for row in (RateSlot.objects.filter(rate__tenant=tenant, rate__archived_at__isnull=True).order_by("id")
                .values_list("rate_id", "connect_fee", "price", "rate_unit", "rate_increment", "group_interval_start")):
        slots.setdefault(row[0], []).append(row[1:])
    try:
        destinations = [engine.Destination(code, tuple(prefixes.get(pk, ())))
                        for pk, code in Destination.objects.filter(**live).order_by("id").values_list("id", "code")]
        timings = [engine.Timing(t.code, frozenset(t.years), frozenset(t.months), frozenset(t.month_days),
                                 frozenset(t.week_days), t.start_time, t.end_time)
                   for t in Timing.objects.filter(**live).order_by("id")]
        rates = []
        for pk, code in Rate.objects.filter(**live).order_by("id").values_list("id", "code"):
            rows = slots.get(pk)
            if not rows:
                raise engine.TariffPlanError(None, None, f"rate {code} has no slots")
            rates.append(engine.Rate(code, tuple(engine.RateSlot(_dec(fee), _dec(price), unit, inc, start)
                                                 for fee, price, unit, inc, start in rows)))
        destination_rates = [
            engine.DestinationRate(code, dest or ANY, rate, method, decimals, _dec(max_cost), strategy)
            for code, dest, rate, method, decimals, max_cost, strategy in
            DestinationRate.objects.filter(**live).order_by("id").values_list(
                "code", "destination__code", "rate__code", "rounding_method", "rounding_decimals", "max_cost",
                "max_cost_strategy")]
        bindings = [
            engine.RatingPlanBinding(plan, dr, timing or ANY, _dec(weight))
            for plan, dr, timing, weight in
            RatingPlanBinding.objects.filter(rating_plan__tenant=tenant, rating_plan__archived_at__isnull=True)
            .order_by("id").values_list("rating_plan__code", "destination_rate_code", "timing__code", "weight")]
        profiles = [
            engine.RatingProfile(tenant.code, category, subject, activation, plan, tuple(fallbacks))
            for category, subject, activation, plan, fallbacks in
            RatingProfile.objects.filter(**live).order_by("id").values_list(
                "category", "subject", "activation_time", "rating_plan__code", "fallback_subjects")]
        return engine.TariffPlan(destinations=destinations, timings=timings, rates=rates,
                                 destination_rates=destination_rates, rating_plan_bindings=bindings,
                                 rating_profiles=profiles)
    except engine.TariffPlanError as exc:
        raise ValidationFailed(f"The tariff plan of {tenant.code} would be invalid: {exc.message}.",
                               code="plan_invalid", fields={"__all__": [exc.message]}) from None


def plan_for(tenant) -> engine.TariffPlan:
    """The compiled plan of a tenant (object or code), from the cache when its version is current."""
    code = tenant.code if isinstance(tenant, RatingTenant) else str(tenant)
    row = (RatingTenant.objects.filter(code=code, archived_at__isnull=True)
           .values_list("id", "plan_version").first())
    if row is None:
        raise NotFound(f"No rating tenant {code!r}.", code="tenant_not_found", fields={"tenant": ["Unknown tenant."]})
    stamp = (row[0], row[1])
    with _lock:
        cached = _cache.get(code)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    plan = build_plan(RatingTenant.objects.get(pk=row[0]))
    with _lock:
        _cache[code] = (stamp, plan)
    return plan


def touch(tenant) -> None:
    """Bump the tenant's plan version (call in the transaction that changed its plan)."""
    pk = tenant.pk if isinstance(tenant, RatingTenant) else tenant
    RatingTenant.objects.filter(pk=pk).update(plan_version=F("plan_version") + 1, updated_at=now())


def validate(tenant) -> engine.TariffPlan:
    """Compile the tenant's plan as it now stands in this transaction; raise if invalid."""
    tenant = tenant if isinstance(tenant, RatingTenant) else RatingTenant.objects.get(pk=tenant)
    return build_plan(tenant)
