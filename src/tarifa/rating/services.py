"""The only write path for tariff plans, tariffs' rating, bundles, usage types and formats.

Every function takes keyword arguments and an `actor`, runs in one transaction, writes
an audit event and raises a typed `DomainError` with a code. A change to a tenant's
tariff plan is checked by compiling the tenant's whole plan in the same transaction
(`plan_invalid` names the broken reference; nothing is written) and bumps the tenant's
plan version, so every process prices with the new plan from its next record on.

Usage import, reprocessing and re-rating live in `usage.py`; the CGRateS files in
`cgrates_io.py`; both are services too.
"""

import datetime as dt
from decimal import Decimal

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel import ownership
from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, DomainError, ValidationFailed
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import parse_amount

from . import engine, plans
from .formats import FormatError, validate_spec
from .formats import builtin as builtin_formats
from .models import (Bundle, Destination, DestinationPrefix, DestinationRate, Rate, RateSlot, RatingPlan,
                     RatingPlanBinding, RatingProfile, RatingTenant, TariffRating, Timing, UsageFormat, UsageType)
from .units import QuantityError, parse_quantity

ENGINE_USAGE_TYPE = {True: "voice", False: "data"}


def tenant_of(obj) -> RatingTenant | None:
    for path in ("tenant", "destination", "rate", "rating_plan"):
        target = getattr(obj, path, None)
        if isinstance(target, RatingTenant):
            return target
        if target is not None and hasattr(target, "tenant"):
            return target.tenant
    return None


def _same_tenant(obj) -> None:
    """Plan rows only refer to rows of their own tenant."""
    tenant_id = getattr(obj, "tenant_id", None)
    if isinstance(obj, RatingPlanBinding):
        tenant_id = obj.rating_plan.tenant_id
    for name in ("destination", "rate", "rating_plan", "timing"):
        if name == "rating_plan" and isinstance(obj, RatingPlanBinding):
            continue
        target = getattr(obj, name, None) if hasattr(obj, f"{name}_id") else None
        if target is not None and tenant_id is not None and getattr(target, "tenant_id", tenant_id) != tenant_id:
            raise ValidationFailed(f"The {name.replace('_', ' ')} belongs to another tenant.", code="other_tenant",
                                   fields={name: ["Another tenant's."]})


def _plan_changed(tenant) -> None:
    ownership.check_local_edit(RatingTenant)  # bulk writes (prefix uploads) pass here, not through audit
    if tenant is not None:
        plans.validate(tenant)
        plans.touch(tenant)


def _no_tenant_move(obj, changes):
    if "tenant" in changes and changes["tenant"] is not None and changes["tenant"].pk != obj.tenant_id:
        raise ValidationFailed("A plan row cannot move to another tenant.", code="tenant_fixed",
                               fields={"tenant": ["Cannot be changed."]})
    changes.pop("tenant", None)


def _live_tenant(tenant):
    if tenant is None or tenant.archived_at is not None:
        raise ValidationFailed("Choose a live rating tenant.", code="tenant_archived", fields={"tenant": ["Archived."]})
    return tenant


# Tenants -------------------------------------------------------------------------------------------

@transaction.atomic
def create_tenant(*, actor, code, name="", description="") -> RatingTenant:
    """A rating tenant (CGRateS's tenant): the namespace of one set of tariff plans."""
    return recorded.create(RatingTenant, actor=actor, code=code, name=name, description=description)


@transaction.atomic
def update_tenant(tenant, *, actor, **changes) -> RatingTenant:
    if "code" in changes and changes["code"] != tenant.code:
        raise ValidationFailed("A tenant's code cannot change (records and profiles name it).", code="code_fixed",
                               fields={"code": ["Cannot be changed."]})
    changes.pop("code", None)
    return recorded.update(tenant, actor=actor, **changes)


@transaction.atomic
def archive_tenant(tenant, *, actor, reason="") -> RatingTenant:
    """Archive a tenant no live tariff rates with (`tenant_in_use` otherwise)."""
    used = TariffRating.objects.filter(tenant=tenant, archived_at__isnull=True).select_related("tariff").first()
    if used is not None:
        raise Conflict(f"Tariff {used.tariff.code} rates with tenant {tenant.code}.", code="tenant_in_use")
    return recorded.archive(tenant, actor=actor, reason=reason)


def get_or_create_tenant(code: str, *, actor) -> RatingTenant:
    found = RatingTenant.objects.filter(code=code).first()
    if found is None:
        return create_tenant(actor=actor, code=code, name=code)
    if found.archived_at is not None:
        raise DomainError(f"Rating tenant {code} is archived.", code="tenant_archived", status=409)
    return found


# Plan rows: generic create / update / archive ---------------------------------------------------

def _create(model, *, actor, **fields):
    if "tenant" in fields:
        _live_tenant(fields["tenant"])
    obj = recorded.create(model, actor=actor, **fields)
    _same_tenant(obj)
    _plan_changed(tenant_of(obj))
    return obj


def _update(obj, *, actor, **changes):
    if hasattr(obj, "tenant_id"):
        _no_tenant_move(obj, changes)
    obj = recorded.update(obj, actor=actor, **changes)
    _same_tenant(obj)
    _plan_changed(tenant_of(obj))
    return obj


@transaction.atomic
def archive(obj, *, actor, reason=""):
    """Archive a plan row; refused (`plan_invalid`) while the plan still refers to it."""
    obj = recorded.archive(obj, actor=actor, reason=reason)
    _plan_changed(tenant_of(obj))
    return obj


@transaction.atomic
def delete_part(obj, *, actor, reason=""):
    """Remove a part of a plan row (a prefix, a rate slot, a binding); the audit keeps what it was."""
    tenant = tenant_of(obj)
    parent = next((getattr(obj, n) for n in ("destination", "rate", "rating_plan") if hasattr(obj, f"{n}_id")), None)
    recorded.record(obj, actor=actor, action="delete", changes=recorded.diff(recorded.snapshot(obj), {}),
                    message=str(reason or ""))
    obj.delete()
    _plan_changed(tenant)
    return parent


# Destinations and prefixes ----------------------------------------------------------------------

def _clean_prefixes(prefixes) -> list[str]:
    if isinstance(prefixes, str):
        prefixes = prefixes.replace(",", " ").replace(";", " ").split()
    out = []
    for prefix in prefixes or []:
        prefix = str(prefix).strip()
        if not prefix:
            continue
        if any(c.isspace() for c in prefix) or len(prefix) > 32:
            raise ValidationFailed(f"Bad prefix {prefix!r}.", code="invalid_prefix", fields={"prefixes": ["Bad prefix."]})
        if prefix not in out:
            out.append(prefix)
    return out


@transaction.atomic
def create_destination(*, actor, tenant, code, name="", prefixes=None) -> Destination:
    """A destination with its prefixes (a list, or text separated by spaces/commas)."""
    _live_tenant(tenant)
    dest = recorded.create(Destination, actor=actor, tenant=tenant, code=code, name=name)
    for prefix in _clean_prefixes(prefixes):
        DestinationPrefix.objects.create(destination=dest, prefix=prefix)
    _plan_changed(tenant)
    return dest


@transaction.atomic
def update_destination(dest, *, actor, prefixes=None, **changes) -> Destination:
    """Change code/name; `prefixes` (when given) replaces the prefix list."""
    _no_tenant_move(dest, changes)
    dest = recorded.update(dest, actor=actor, **changes)
    if prefixes is not None:
        new = _clean_prefixes(prefixes)
        old = list(dest.prefixes.order_by("id").values_list("prefix", flat=True))
        if new != old:
            dest.prefixes.exclude(prefix__in=new).delete()
            for prefix in new:
                if prefix not in old:
                    DestinationPrefix.objects.create(destination=dest, prefix=prefix)
            recorded.record(dest, actor=actor, action="prefixes", changes={"prefixes": [old, new]})
    _plan_changed(dest.tenant)
    return dest


@transaction.atomic
def create_prefix(*, actor, destination, prefix) -> DestinationPrefix:
    if destination.archived_at is not None:
        raise ValidationFailed("The destination is archived.", code="destination_archived",
                               fields={"destination": ["Archived."]})
    cleaned = _clean_prefixes([prefix])
    return _create(DestinationPrefix, actor=actor, destination=destination, prefix=cleaned[0] if cleaned else "")


@transaction.atomic
def upload_prefixes(*, actor, tenant, rows, replace=False) -> dict:
    """Load a prefix table: rows of (destination code, prefix[, name]), e.g. from a CSV upload.

    Missing destinations are created; with `replace`, the destinations named in the
    table keep exactly the prefixes the table gives them. One audit event on the tenant.
    Errors name the row (`invalid_prefix_table`); nothing is written then.
    """
    _live_tenant(tenant)
    table: dict[str, dict] = {}
    problems = []
    for line_no, row in rows:
        code = (row[0] if len(row) > 0 else "").strip()
        prefix = (row[1] if len(row) > 1 else "").strip()
        name = (row[2] if len(row) > 2 else "").strip()
        if not code or not prefix:
            problems.append(f"line {line_no}: a destination code and a prefix are required")
            continue
        if code.startswith("*") or any(c in code for c in " ,;") or any(c.isspace() for c in prefix):
            problems.append(f"line {line_no}: bad destination code or prefix")
            continue
        entry = table.setdefault(code, {"name": name, "prefixes": []})
        if prefix not in entry["prefixes"]:
            entry["prefixes"].append(prefix)
        if len(problems) >= 20:
            break
    if problems:
        raise ValidationFailed("; ".join(problems), code="invalid_prefix_table", fields={"file": problems})
    existing = {d.code: d for d in Destination.objects.filter(tenant=tenant, archived_at__isnull=True,
                                                              code__in=list(table))}
    created = added = removed = 0
    new_dests = [Destination(tenant=tenant, code=code, name=entry["name"] or "")
                 for code, entry in table.items() if code not in existing]
    Destination.objects.bulk_create(new_dests)
    created = len(new_dests)
    for d in new_dests:
        existing[d.code] = d
    have: dict = {}
    for dest_id, prefix in DestinationPrefix.objects.filter(destination__in=list(existing.values())).values_list(
            "destination_id", "prefix"):
        have.setdefault(dest_id, set()).add(prefix)
    to_add = []
    for code, entry in table.items():
        dest = existing[code]
        present = have.get(dest.pk, set())
        if replace:
            stale = present - set(entry["prefixes"])
            if stale:
                removed += DestinationPrefix.objects.filter(destination=dest, prefix__in=stale).delete()[0]
        to_add += [DestinationPrefix(destination=dest, prefix=p) for p in entry["prefixes"] if p not in present]
    DestinationPrefix.objects.bulk_create(to_add, batch_size=5000)
    added = len(to_add)
    stats = {"destinations": len(table), "destinations_created": created, "prefixes_added": added,
             "prefixes_removed": removed}
    recorded.record(tenant, actor=actor, action="upload_prefixes", changes={"prefix_table": [None, stats]})
    _plan_changed(tenant)
    return stats


# Timings, rates, destination rates, plans, profiles ------------------------------------------------

def create_timing(*, actor, **fields) -> Timing:
    with transaction.atomic():
        return _create(Timing, actor=actor, **fields)


def update_timing(obj, *, actor, **changes) -> Timing:
    with transaction.atomic():
        return _update(obj, actor=actor, **changes)


def _slot_fields(slot: dict) -> dict:
    out = {}
    for name in ("connect_fee", "price"):
        value = slot.get(name, "0" if name == "connect_fee" else None)
        if value is None:
            raise ValidationFailed("A rate slot needs a price.", code="required", fields={"price": ["Required."]})
        try:
            out[name] = parse_amount(value, field=name, places=12)
        except ValidationFailed:
            raise
    for name in ("rate_unit", "rate_increment", "group_interval_start"):
        value = slot.get(name, 0 if name == "group_interval_start" else None)
        if value is None:
            raise ValidationFailed(f"A rate slot needs {name}.", code="required", fields={name: ["Required."]})
        if isinstance(value, str):
            try:
                value = engine.parse_duration(value)
            except ValueError:
                raise ValidationFailed(f"{name}: {value!r} is not a duration.", code="invalid_duration",
                                       fields={name: ["A duration such as 60s, or base units."]}) from None
        if not isinstance(value, int) or value < 0:
            raise ValidationFailed(f"{name} must not be negative.", code="invalid_duration", fields={name: ["≥ 0."]})
        out[name] = value
    return out


@transaction.atomic
def create_rate(*, actor, tenant, code, name="", slots=None, **first_slot) -> Rate:
    """A rate with its slots (a list of dicts, or the first slot's fields given directly)."""
    _live_tenant(tenant)
    rate = recorded.create(Rate, actor=actor, tenant=tenant, code=code, name=name)
    for slot in (slots if slots is not None else [first_slot]):
        RateSlot.objects.create(rate=rate, **_slot_fields(slot))
    _plan_changed(tenant)
    return rate


@transaction.atomic
def update_rate(rate, *, actor, slots=None, **changes) -> Rate:
    """Change code/name; `slots` (when given) replaces every slot, in the order given."""
    for name in ("connect_fee", "price", "rate_unit", "rate_increment", "group_interval_start"):
        changes.pop(name, None)
    _no_tenant_move(rate, changes)
    rate = recorded.update(rate, actor=actor, **changes)
    if slots is not None:
        old = [recorded.snapshot(s) for s in rate.slots.order_by("id")]
        rate.slots.all().delete()
        for slot in slots:
            RateSlot.objects.create(rate=rate, **_slot_fields(slot))
        recorded.record(rate, actor=actor, action="slots", changes={"slots": [old, recorded._plain(slots)]})
    _plan_changed(rate.tenant)
    return rate


@transaction.atomic
def create_rate_slot(*, actor, rate, **fields) -> RateSlot:
    return _create(RateSlot, actor=actor, rate=rate, **_slot_fields(fields))


@transaction.atomic
def update_rate_slot(slot, *, actor, **fields) -> RateSlot:
    fields.pop("rate", None)
    merged = {n: fields.get(n, getattr(slot, n)) for n in ("connect_fee", "price", "rate_unit", "rate_increment",
                                                          "group_interval_start")}
    return _update(slot, actor=actor, **_slot_fields(merged))


def create_destination_rate(*, actor, **fields) -> DestinationRate:
    with transaction.atomic():
        return _create(DestinationRate, actor=actor, **fields)


def update_destination_rate(obj, *, actor, **changes) -> DestinationRate:
    with transaction.atomic():
        return _update(obj, actor=actor, **changes)


@transaction.atomic
def create_rating_plan(*, actor, tenant, code, name="", bindings=()) -> RatingPlan:
    """A rating plan with bindings: dicts of destination_rate_code, timing (a Timing or None = *any), weight."""
    _live_tenant(tenant)
    plan = recorded.create(RatingPlan, actor=actor, tenant=tenant, code=code, name=name)
    for b in bindings or ():
        _same_tenant(RatingPlanBinding.objects.create(rating_plan=plan, **_binding_fields(tenant, b)))
    _plan_changed(tenant)
    return plan


def _binding_fields(tenant, b: dict) -> dict:
    timing = b.get("timing")
    if isinstance(timing, str):
        timing = None if timing in ("", engine.ANY) else Timing.objects.filter(
            tenant=tenant, code=timing, archived_at__isnull=True).first()
        if timing is None and b.get("timing") not in ("", engine.ANY):
            raise ValidationFailed(f"No timing {b.get('timing')!r}.", code="unknown_timing",
                                   fields={"timing": ["Unknown timing."]})
    try:
        weight = Decimal(str(b.get("weight", 10)))
    except Exception:
        raise ValidationFailed("The weight is a number.", code="invalid_weight", fields={"weight": ["A number."]}) from None
    return {"destination_rate_code": str(b["destination_rate_code"]), "timing": timing, "weight": weight}


@transaction.atomic
def update_rating_plan(obj, *, actor, bindings=None, **changes) -> RatingPlan:
    """Change code/name; `bindings` (when given) replaces every binding, in the order given."""
    _no_tenant_move(obj, changes)
    obj = recorded.update(obj, actor=actor, **changes)
    if bindings is not None:
        old = [recorded.snapshot(b) for b in obj.bindings.order_by("id")]
        obj.bindings.all().delete()
        for b in bindings:
            RatingPlanBinding.objects.create(rating_plan=obj, **_binding_fields(obj.tenant, b))
        recorded.record(obj, actor=actor, action="bindings", changes={"bindings": [old, recorded._plain(bindings)]})
    _plan_changed(obj.tenant)
    return obj


@transaction.atomic
def create_binding(*, actor, rating_plan, destination_rate_code, timing=None, weight=10) -> RatingPlanBinding:
    return _create(RatingPlanBinding, actor=actor, rating_plan=rating_plan,
                   **_binding_fields(rating_plan.tenant, {"destination_rate_code": destination_rate_code,
                                                          "timing": timing, "weight": weight}))


def update_binding(obj, *, actor, **changes) -> RatingPlanBinding:
    changes.pop("rating_plan", None)
    with transaction.atomic():
        return _update(obj, actor=actor, **changes)


def create_rating_profile(*, actor, **fields) -> RatingProfile:
    with transaction.atomic():
        return _create(RatingProfile, actor=actor, **fields)


def update_rating_profile(obj, *, actor, **changes) -> RatingProfile:
    with transaction.atomic():
        return _update(obj, actor=actor, **changes)


# Tariffs' rating and bundles -------------------------------------------------------------------

def _check_tariff_rating(tenant, rating_plan, categories):
    _live_tenant(tenant)
    if rating_plan is not None and rating_plan.tenant_id != tenant.pk:
        raise ValidationFailed("The rating plan belongs to another tenant.", code="plan_other_tenant",
                               fields={"rating_plan": ["Another tenant's plan."]})
    if not isinstance(categories or {}, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in (categories or {}).items()):
        raise ValidationFailed('Categories map usage types to categories, e.g. {"voice": "call"}.',
                               code="invalid_categories", fields={"categories": ["A JSON object of strings."]})


@transaction.atomic
def create_tariff_rating(*, actor, tariff, tenant, categories=None, subject="", rating_plan=None,
                         rounding_decimals=5) -> TariffRating:
    """Say how `tariff`'s usage is rated (one live rating per tariff, `tariff_already_rated` otherwise)."""
    _check_tariff_rating(tenant, rating_plan, categories)
    if TariffRating.objects.filter(tariff=tariff, archived_at__isnull=True).exists():
        raise Conflict(f"Tariff {tariff.code} already has a rating.", code="tariff_already_rated",
                       fields={"tariff": ["Already rated; edit its rating."]})
    return recorded.create(TariffRating, actor=actor, tariff=tariff, tenant=tenant, categories=categories or {},
                           subject=subject or "", rating_plan=rating_plan, rounding_decimals=rounding_decimals)


@transaction.atomic
def update_tariff_rating(obj, *, actor, **changes) -> TariffRating:
    changes.pop("tariff", None)
    _check_tariff_rating(changes.get("tenant", obj.tenant), changes.get("rating_plan", obj.rating_plan),
                         changes.get("categories", obj.categories))
    return recorded.update(obj, actor=actor, **changes)


@transaction.atomic
def archive_record(obj, *, actor, reason=""):
    """Archive a record that is not part of a tariff plan (tariff rating, bundle, usage type, format)."""
    return recorded.archive(obj, actor=actor, reason=reason)


def _allowance(value, usage_type: str) -> int:
    ut = UsageType.objects.filter(code=usage_type, archived_at__isnull=True).first()
    if ut is None:
        raise ValidationFailed(f"Unknown usage type {usage_type!r}.", code="unknown_usage_type",
                               fields={"usage_type": ["Unknown usage type."]})
    try:
        units = parse_quantity(value, ut.measure)
    except QuantityError as exc:
        raise ValidationFailed(str(exc), code="invalid_quantity", fields={"allowance": [str(exc)]}) from None
    if units <= 0:
        raise ValidationFailed("The allowance is positive.", code="invalid_quantity", fields={"allowance": ["> 0."]})
    return units


@transaction.atomic
def create_bundle(*, actor, tariff, code, name, usage_type, allowance, period="month", destinations=()) -> Bundle:
    """Free units of `tariff` per period: `allowance` as the operator writes it (300m, 10GB, 100)."""
    return recorded.create(Bundle, actor=actor, tariff=tariff, code=code, name=name, usage_type=usage_type,
                           allowance=_allowance(allowance, usage_type), period=period,
                           destinations=list(destinations or []))


@transaction.atomic
def update_bundle(obj, *, actor, **changes) -> Bundle:
    changes.pop("tariff", None)
    if "allowance" in changes:
        changes["allowance"] = _allowance(changes["allowance"], changes.get("usage_type", obj.usage_type))
    if "destinations" in changes:
        changes["destinations"] = list(changes["destinations"] or [])
    return recorded.update(obj, actor=actor, **changes)


# Usage types and formats ---------------------------------------------------------------------

@transaction.atomic
def create_usage_type(*, actor, code, name, measure="count", split_by_time=False) -> UsageType:
    if split_by_time and measure != UsageType.Measure.TIME:
        raise ValidationFailed("Only time is split by time of day.", code="invalid_split",
                               fields={"split_by_time": ["Only for time."]})
    return recorded.create(UsageType, actor=actor, code=code, name=name, measure=measure, split_by_time=split_by_time)


@transaction.atomic
def update_usage_type(obj, *, actor, **changes) -> UsageType:
    if "code" in changes and changes["code"] != obj.code:
        raise ValidationFailed("A usage type's code cannot change (records name it).", code="code_fixed",
                               fields={"code": ["Cannot be changed."]})
    if "measure" in changes and changes["measure"] != obj.measure:
        raise ValidationFailed("A usage type's measure cannot change (records are stored in it).",
                               code="measure_fixed", fields={"measure": ["Cannot be changed."]})
    return recorded.update(obj, actor=actor, **changes)


def _check_spec(code, spec):
    if code in builtin_formats():
        raise ValidationFailed(f"{code!r} is a built-in format.", code="builtin_format",
                               fields={"code": ["Built-in formats cannot be redefined."]})
    try:
        validate_spec(spec)
    except FormatError as exc:
        raise ValidationFailed(f"Format: {exc}", code="invalid_format", fields={"spec": [str(exc)]}) from None


@transaction.atomic
def create_usage_format(*, actor, code, name, spec, description="") -> UsageFormat:
    """A usage file format declared as data (see docs/rating.md); checked before it is saved."""
    _check_spec(code, spec)
    return recorded.create(UsageFormat, actor=actor, code=code, name=name, spec=spec, description=description)


@transaction.atomic
def update_usage_format(obj, *, actor, **changes) -> UsageFormat:
    _check_spec(changes.get("code", obj.code), changes.get("spec", obj.spec))
    return recorded.update(obj, actor=actor, **changes)


# The cost calculator ------------------------------------------------------------------------------

def calculate_cost(*, tenant, category, subject, destination="", answer_time: dt.datetime, usage: int,
                   usage_type="voice", rating_plan=None, rounding_decimals=5) -> engine.Cost:
    """Price one call with the tenant's current plan (no writes).

    `usage` is base units (ns for time). Raises `engine.RatingError` when the call cannot
    be rated (UNAUTHORIZED_DESTINATION, RATING_PLAN_NOT_FOUND) and `NotFound` for an
    unknown tenant.
    """
    plan = plans.plan_for(tenant)
    if answer_time.tzinfo is None:
        raise ValidationFailed("The answer time needs a time zone.", code="naive_time",
                               fields={"answer_time": ["Give a time zone, e.g. 2019-03-11T09:00:00Z."]})
    if not 0 <= int(rounding_decimals) <= 18:
        raise ValidationFailed("Rounding decimals are 0 to 18.", code="invalid_rounding",
                               fields={"rounding_decimals": ["0 to 18."]})
    ut = UsageType.objects.filter(code=usage_type).first()
    split = ut.split_by_time if ut is not None else usage_type in engine.VOICE_USAGE_TYPES
    return engine.rate(plan, tenant=plan_tenant_code(tenant), category=category, subject=subject,
                       destination=destination or "", answer_time=answer_time, usage=usage,
                       usage_type=ENGINE_USAGE_TYPE[split], rounding_decimals=int(rounding_decimals),
                       rating_plan_id=rating_plan or None)


def plan_tenant_code(tenant) -> str:
    return tenant.code if isinstance(tenant, RatingTenant) else str(tenant)


def dec(value) -> str:
    """A Decimal as a plain string (no exponent)."""
    if value is None:
        return None
    return format(value, "f")


def cost_to_dict(cost: engine.Cost) -> dict:
    """The calculator's answer: the cost and how each span was priced (JSON-ready)."""
    return {
        "cost": dec(cost.cost),
        "tenant": cost.tenant, "category": cost.category, "subject": cost.subject, "destination": cost.destination,
        "answer_time": cost.answer_time.isoformat(), "usage_type": cost.usage_type,
        "usage": cost.usage, "usage_text": engine.format_duration(cost.usage) if cost.usage_type == "voice"
        else str(cost.usage),
        "rated_usage": cost.rated_usage, "unrounded_cost": dec(cost.unrounded_cost),
        "connect_fee": dec(cost.connect_fee), "rounding_method": cost.rounding_method,
        "rounding_decimals": cost.rounding_decimals, "max_cost_applied": cost.max_cost_applied,
        "max_cost_disconnect": cost.max_cost_disconnect, "max_usage": cost.max_usage,
        "spans": [{
            "start": s.start.isoformat(), "end": s.end.isoformat(), "usage": s.usage, "rated_usage": s.rated_usage,
            "elapsed": s.elapsed, "matched_subject": s.matched_subject, "rating_plan": s.rating_plan_id,
            "destination": s.destination_id, "prefix": s.matched_prefix, "destination_rate": s.destination_rate_id,
            "timing": s.timing_id, "weight": dec(s.weight), "rate": s.rate_id,
            "rate_slot": None if s.slot is None else {
                "connect_fee": dec(s.slot.connect_fee), "rate": dec(s.slot.rate), "rate_unit": s.slot.rate_unit,
                "rate_increment": s.slot.rate_increment, "group_interval_start": s.slot.group_interval_start},
            "connect_fee": dec(s.connect_fee), "cost": dec(s.cost),
            "increments": [{"count": i.count, "duration": i.duration, "cost": dec(i.cost)} for i in s.increments],
        } for s in cost.spans],
    }


# Free units spent online (charging) ---------------------------------------------------------------

def use_free_units(*, subscription_id, bundle_id, period_start: dt.date, units: int) -> None:
    """Add `units` to a subscription's bundle counter for a period (online charging settles them).

    Runs in the caller's transaction (which holds the account lock); an upsert, so two
    sessions of one subscription add up.
    """
    if units <= 0:
        return
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO rating_bundlecounter (id, subscription_id, bundle_id, period_start, used, updated_at)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (subscription_id, bundle_id, period_start)
            DO UPDATE SET used = rating_bundlecounter.used + excluded.used, updated_at = excluded.updated_at""",
                       [uuid7(), subscription_id, bundle_id, period_start, units, now()])
