"""CGRateS classic tariff-plan directories in and out of the database.

`import_directory(path, tenant=None, actor=...)` reads the six CSV files with the
engine's loader (which checks every value and reference and names the file and line of
the first problem — then nothing is written), and replaces, in one transaction, the
whole tariff plan of each tenant it loads: the tenants named in RatingProfiles.csv, or
`tenant` for all of them. Rows are created in file order, which keeps CGRateS's
first-defined-wins ties. Tariffs that rate with a replaced rating plan are pointed at the
new plan of the same id; if the new files lack it, the import is refused.

`export_directory(tenant, path)` writes the tenant's plan as the same six files;
importing them again gives the same prices.
"""

import csv
from pathlib import Path

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.errors import DomainError, ValidationFailed
from tarifa.kernel.ids import uuid7

from . import engine, plans
from .models import (ANY, Destination, DestinationPrefix, DestinationRate, Rate, RateSlot, RatingPlan,
                     RatingPlanBinding, RatingProfile, RatingTenant, TariffRating, Timing)
from .services import get_or_create_tenant


def _plan_error(exc: engine.TariffPlanError) -> ValidationFailed:
    where = exc.file or ""
    if exc.file and exc.line_no:
        where = f"{Path(exc.file).name}, line {exc.line_no}"
    elif exc.file:
        where = Path(exc.file).name
    message = f"{where}: {exc.message}" if where else exc.message
    fields = {"file": [Path(exc.file).name if exc.file else ""], "line": [str(exc.line_no or "")],
              "__all__": [message]}
    return ValidationFailed(f"{message}; nothing was imported.", code="plan_invalid", fields=fields)


def read_directory(path, tenant: str | None = None) -> engine.TariffPlan:
    try:
        return engine.load_directory(path, tenant=tenant)
    except engine.TariffPlanError as exc:
        raise _plan_error(exc) from None


@transaction.atomic
def import_directory(path, *, tenant: str | None = None, actor) -> dict:
    """Replace the plans of the tenants in a CGRateS directory; counts per tenant."""
    plan = read_directory(path, tenant)
    tenants = sorted({p.tenant for p in plan.rating_profiles}) or ([tenant] if tenant else [])
    if not tenants:
        raise ValidationFailed("RatingProfiles.csv names no tenant: give one (--tenant).", code="no_tenant",
                               fields={"tenant": ["Required: the files have no rating profile."]})
    summary = {}
    for code in tenants:
        summary[code] = _replace_tenant_plan(plan, code, actor=actor, source=str(path))
    return {"directory": str(path), "tenants": summary}


def _replace_tenant_plan(plan: engine.TariffPlan, code: str, *, actor, source: str) -> dict:
    tenant = get_or_create_tenant(code, actor=actor)
    RatingTenant.objects.select_for_update().get(pk=tenant.pk)
    before = _counts(tenant)
    # Tariffs that rate with a plan of this tenant keep their plan by id.
    pinned = {tr.pk: tr.rating_plan.code for tr in TariffRating.objects.filter(
        rating_plan__tenant=tenant).select_related("rating_plan")}
    missing = sorted({c for c in pinned.values() if not plan.has_rating_plan(c)})
    if missing:
        raise DomainError(f"Tariffs rate with rating plan(s) {', '.join(missing)} of {code}, which the new files "
                          f"lack; nothing was imported.", code="plan_in_use", status=409)
    TariffRating.objects.filter(pk__in=list(pinned)).update(rating_plan=None)
    RatingProfile.objects.filter(tenant=tenant).delete()
    RatingPlanBinding.objects.filter(rating_plan__tenant=tenant).delete()
    RatingPlan.objects.filter(tenant=tenant).delete()
    DestinationRate.objects.filter(tenant=tenant).delete()
    RateSlot.objects.filter(rate__tenant=tenant).delete()
    Rate.objects.filter(tenant=tenant).delete()
    Timing.objects.filter(tenant=tenant).delete()
    DestinationPrefix.objects.filter(destination__tenant=tenant).delete()
    Destination.objects.filter(tenant=tenant).delete()

    destinations = {}
    for dest in plan.destinations.values():
        destinations[dest.id] = Destination(id=uuid7(), tenant=tenant, code=dest.id)
    Destination.objects.bulk_create(destinations.values(), batch_size=2000)
    DestinationPrefix.objects.bulk_create(
        [DestinationPrefix(id=uuid7(), destination=destinations[d.id], prefix=p)
         for d in plan.destinations.values() for p in d.prefixes], batch_size=5000)
    timings = {}
    for t in plan.timings.values():
        if t.id == ANY:
            continue
        timings[t.id] = Timing(id=uuid7(), tenant=tenant, code=t.id, years=sorted(t.years), months=sorted(t.months),
                               month_days=sorted(t.month_days), week_days=sorted(t.week_days),
                               start_time=t.start_time, end_time=t.end_time)
    Timing.objects.bulk_create(timings.values())
    rates = {}
    for r in plan.rates.values():
        rates[r.id] = Rate(id=uuid7(), tenant=tenant, code=r.id)
    Rate.objects.bulk_create(rates.values(), batch_size=2000)
    RateSlot.objects.bulk_create(
        [RateSlot(id=uuid7(), rate=rates[r.id], connect_fee=s.connect_fee, price=s.rate, rate_unit=s.rate_unit,
                  rate_increment=s.rate_increment, group_interval_start=s.group_interval_start)
         for r in plan.rates.values() for s in r.slots], batch_size=5000)
    DestinationRate.objects.bulk_create(
        [DestinationRate(id=uuid7(), tenant=tenant, code=dr.id,
                         destination=None if dr.destination_id == ANY else destinations[dr.destination_id],
                         rate=rates[dr.rate_id], rounding_method=dr.rounding_method,
                         rounding_decimals=dr.rounding_decimals, max_cost=dr.max_cost,
                         max_cost_strategy=dr.max_cost_strategy)
         for dr in plan.destination_rates], batch_size=5000)
    rating_plans = {}
    for binding in plan.rating_plan_bindings:
        if binding.plan_id not in rating_plans:
            rating_plans[binding.plan_id] = RatingPlan(id=uuid7(), tenant=tenant, code=binding.plan_id)
    RatingPlan.objects.bulk_create(rating_plans.values())
    RatingPlanBinding.objects.bulk_create(
        [RatingPlanBinding(id=uuid7(), rating_plan=rating_plans[b.plan_id], destination_rate_code=b.destination_rate_id,
                           timing=None if b.timing_id == ANY else timings[b.timing_id], weight=b.weight)
         for b in plan.rating_plan_bindings], batch_size=5000)
    RatingProfile.objects.bulk_create(
        [RatingProfile(id=uuid7(), tenant=tenant, category=p.category, subject=p.subject,
                       activation_time=p.activation_time, rating_plan=rating_plans[p.rating_plan_id],
                       fallback_subjects=list(p.fallback_subjects))
         for p in plan.rating_profiles if p.tenant == code], batch_size=2000)
    for pk, plan_code in pinned.items():
        TariffRating.objects.filter(pk=pk).update(rating_plan=rating_plans[plan_code])
    plans.validate(tenant)
    plans.touch(tenant)
    after = _counts(tenant)
    recorded.record(tenant, actor=actor, action="import_cgrates",
                    changes={k: [before[k], after[k]] for k in after if before[k] != after[k]},
                    message=f"CGRateS tariff plan from {source}")
    return after


def _counts(tenant) -> dict:
    return {
        "destinations": Destination.objects.filter(tenant=tenant).count(),
        "prefixes": DestinationPrefix.objects.filter(destination__tenant=tenant).count(),
        "timings": Timing.objects.filter(tenant=tenant).count(),
        "rates": Rate.objects.filter(tenant=tenant).count(),
        "rate_slots": RateSlot.objects.filter(rate__tenant=tenant).count(),
        "destination_rates": DestinationRate.objects.filter(tenant=tenant).count(),
        "rating_plans": RatingPlan.objects.filter(tenant=tenant).count(),
        "bindings": RatingPlanBinding.objects.filter(rating_plan__tenant=tenant).count(),
        "rating_profiles": RatingProfile.objects.filter(tenant=tenant).count(),
    }


def _duration(value: int) -> str:
    """CGRateS syntax that reads back exactly: whole seconds as 60s, other values as base units."""
    if value % engine.SECOND == 0:
        return f"{value // engine.SECOND}s"
    return str(value)


def _dec(value) -> str:
    return format(value.normalize(), "f") if value is not None else ""


def _ints(values) -> str:
    return ";".join(str(v) for v in sorted(values)) if values else ANY


def export_rows(tenant: RatingTenant) -> dict[str, list[list[str]]]:
    """The tenant's live plan as CGRateS CSV rows per file (header first)."""
    plan = plans.plan_for(tenant)
    files = {
        "Destinations.csv": [["#Id", "Prefix"]] + [[d.id, p] for d in plan.destinations.values() for p in d.prefixes],
        "Timings.csv": [["#Tag", "Years", "Months", "MonthDays", "WeekDays", "Time"]] + [
            [t.id, _ints(t.years), _ints(t.months), _ints(t.month_days), _ints(t.week_days),
             t.start_time.strftime("%H:%M:%S") + (";" + t.end_time.strftime("%H:%M:%S") if t.end_time else "")]
            for t in plan.timings.values() if t.id != ANY],
        "Rates.csv": [["#Id", "ConnectFee", "Rate", "RateUnit", "RateIncrement", "GroupIntervalStart"]] + [
            [r.id, _dec(s.connect_fee), _dec(s.rate), _duration(s.rate_unit), _duration(s.rate_increment),
             _duration(s.group_interval_start)] for r in plan.rates.values() for s in r.slots],
        "DestinationRates.csv": [["#Id", "DestinationId", "RatesTag", "RoundingMethod", "RoundingDecimals", "MaxCost",
                                  "MaxCostStrategy"]] + [
            [dr.id, dr.destination_id, dr.rate_id, dr.rounding_method, str(dr.rounding_decimals), _dec(dr.max_cost),
             dr.max_cost_strategy] for dr in plan.destination_rates],
        "RatingPlans.csv": [["#Id", "DestinationRatesId", "TimingTag", "Weight"]] + [
            [b.plan_id, b.destination_rate_id, b.timing_id, _dec(b.weight)] for b in plan.rating_plan_bindings],
        "RatingProfiles.csv": [["#Tenant", "Category", "Subject", "ActivationTime", "RatingPlanId",
                                "RatesFallbackSubject"]] + [
            [p.tenant, p.category, p.subject, p.activation_time.isoformat().replace("+00:00", "Z"), p.rating_plan_id,
             ";".join(p.fallback_subjects)] for p in plan.rating_profiles],
    }
    return files


def export_directory(tenant: RatingTenant, path) -> dict:
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in export_rows(tenant).items():
        with open(directory / name, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
        counts[name] = len(rows) - 1
    return counts
