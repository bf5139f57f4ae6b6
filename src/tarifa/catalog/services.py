"""The only write path for the catalog.

Every function takes keyword arguments and an `actor`, runs in one transaction,
records an audit event and raises a typed `DomainError` with a code. Prices change
by new price versions: a version that has applied (valid from today or earlier) is
never edited, and a new version may not be back-dated onto days already charged.
"""

import datetime as dt
from decimal import Decimal

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import today
from tarifa.kernel.errors import Conflict, DomainError, ValidationFailed
from tarifa.kernel.money import check_currency, default_currency, parse_amount

from .models import (Channel, ChannelPackage, ChannelPrice, DevicePrice, OneTimeFee, PriceVersion, Service,
                     ServiceType, Tariff, TariffParameter, Tax)

IDENTIFIER_KINDS = ["login", "phone_number", "iccid", "imsi", "ip_address", "mac_address", "smart_card"]


def _money(value, field, *, allow_none=False):
    if value is None and allow_none:
        return None
    amount = parse_amount(value if value is not None else "0", field=field)
    return amount


def _nonnegative(value, field):
    amount = _money(value, field)
    if amount < 0:
        raise ValidationFailed(f"{field} must not be negative.", code="negative_amount",
                               fields={field: ["Must not be negative."]})
    return amount


def _unique_code(model, code, exclude_pk=None):
    qs = model.objects.filter(code=code)
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(f"{model._meta.verbose_name} {code!r} already exists.", code="duplicate_code",
                               fields={"code": ["This code is already used."]})


# Service types and services -----------------------------------------------------------

def _check_identifier_kinds(kinds):
    unknown = [k for k in kinds or [] if k not in IDENTIFIER_KINDS]
    if unknown:
        raise ValidationFailed(f"Unknown identifier kinds: {', '.join(unknown)}.", code="unknown_identifier_kind",
                               fields={"identifier_kinds": [f"Allowed: {', '.join(IDENTIFIER_KINDS)}."]})
    return list(kinds or [])


@transaction.atomic
def create_service_type(*, actor, code, name, category="other", identifier_kinds=(), description="") -> ServiceType:
    """Create a service type; the code is unique."""
    _unique_code(ServiceType, code)
    return recorded.create(ServiceType, actor=actor, code=code, name=name, category=category,
                           identifier_kinds=_check_identifier_kinds(identifier_kinds), description=description)


@transaction.atomic
def update_service_type(obj, *, actor, **changes) -> ServiceType:
    if "code" in changes:
        _unique_code(ServiceType, changes["code"], obj.pk)
    if "identifier_kinds" in changes:
        changes["identifier_kinds"] = _check_identifier_kinds(changes["identifier_kinds"])
    return recorded.update(obj, actor=actor, **changes)


@transaction.atomic
def create_service(*, actor, code, name, service_type, description="") -> Service:
    _unique_code(Service, code)
    if service_type.archived_at:
        raise DomainError("The service type is archived.", code="archived", fields={"service_type": ["Archived."]})
    return recorded.create(Service, actor=actor, code=code, name=name, service_type=service_type,
                           description=description)


@transaction.atomic
def update_service(obj, *, actor, **changes) -> Service:
    if "code" in changes:
        _unique_code(Service, changes["code"], obj.pk)
    return recorded.update(obj, actor=actor, **changes)


def archive(obj, *, actor, reason=""):
    """Archive any catalog record (it stays for history; new use is refused)."""
    return recorded.archive(obj, actor=actor, reason=reason)


# Taxes -------------------------------------------------------------------------------

def _check_tax(rate, valid_from, valid_to):
    rate = parse_amount(rate, field="rate", places=4).quantize(Decimal("0.0001"))
    if rate < 0 or rate > 100:
        raise ValidationFailed("A tax rate is between 0 and 100 %.", code="invalid_rate",
                               fields={"rate": ["Between 0 and 100."]})
    if valid_from and valid_to and valid_to < valid_from:
        raise ValidationFailed("valid_to is before valid_from.", code="invalid_dates",
                               fields={"valid_to": ["Before valid from."]})
    return rate


@transaction.atomic
def create_tax(*, actor, code, name, rate, inclusive=True, service_types=(), valid_from=None, valid_to=None) -> Tax:
    """Create a tax rate; empty `service_types` means every service type."""
    _unique_code(Tax, code)
    rate = _check_tax(rate, valid_from, valid_to)
    tax = recorded.create(Tax, actor=actor, code=code, name=name, rate=rate, inclusive=inclusive,
                          valid_from=valid_from, valid_to=valid_to)
    tax.service_types.set(list(service_types))
    if service_types:
        recorded.record(tax, actor=actor, action="service_types",
                        changes={"service_types": [[], sorted(st.code for st in service_types)]})
    return tax


@transaction.atomic
def update_tax(tax, *, actor, service_types=None, **changes) -> Tax:
    if "code" in changes:
        _unique_code(Tax, changes["code"], tax.pk)
    if "rate" in changes or "valid_from" in changes or "valid_to" in changes:
        changes["rate"] = _check_tax(changes.get("rate", tax.rate), changes.get("valid_from", tax.valid_from),
                                     changes.get("valid_to", tax.valid_to))
    tax = recorded.update(tax, actor=actor, **changes)
    if service_types is not None:
        before = sorted(tax.service_types.values_list("code", flat=True))
        tax.service_types.set(list(service_types))
        after = sorted(st.code for st in service_types)
        if before != after:
            recorded.record(tax, actor=actor, action="service_types", changes={"service_types": [before, after]})
    return tax


# TV channels --------------------------------------------------------------------------

@transaction.atomic
def create_channel(*, actor, code, name, number=None) -> Channel:
    _unique_code(Channel, code)
    return recorded.create(Channel, actor=actor, code=code, name=name, number=number)


@transaction.atomic
def update_channel(obj, *, actor, **changes) -> Channel:
    if "code" in changes:
        _unique_code(Channel, changes["code"], obj.pk)
    return recorded.update(obj, actor=actor, **changes)


@transaction.atomic
def create_channel_package(*, actor, code, name, channels=()) -> ChannelPackage:
    _unique_code(ChannelPackage, code)
    package = recorded.create(ChannelPackage, actor=actor, code=code, name=name)
    package.channels.set(list(channels))
    recorded.record(package, actor=actor, action="channels",
                    changes={"channels": [[], sorted(c.code for c in channels)]})
    return package


@transaction.atomic
def update_channel_package(obj, *, actor, channels=None, **changes) -> ChannelPackage:
    if "code" in changes:
        _unique_code(ChannelPackage, changes["code"], obj.pk)
    obj = recorded.update(obj, actor=actor, **changes)
    if channels is not None:
        before = sorted(obj.channels.values_list("code", flat=True))
        obj.channels.set(list(channels))
        after = sorted(c.code for c in channels)
        if before != after:
            recorded.record(obj, actor=actor, action="channels", changes={"channels": [before, after]})
    return obj


# Tariffs ------------------------------------------------------------------------------

TARIFF_MONEY = ("suspend_below", "resume_at", "promised_payment_amount")


def _check_tariff(values: dict) -> dict:
    for name in TARIFF_MONEY:
        if name in values:
            values[name] = _money(values[name], name)
    if values.get("warn_below") not in (None, ""):
        values["warn_below"] = _money(values["warn_below"], "warn_below")
    else:
        values["warn_below"] = None
    if values.get("promised_payment_amount") is not None and values["promised_payment_amount"] < 0:
        raise ValidationFailed("The promised payment amount must not be negative.", code="negative_amount",
                               fields={"promised_payment_amount": ["Must not be negative."]})
    if values.get("currency"):
        check_currency(values["currency"])
    if values["resume_at"] < values["suspend_below"]:
        raise ValidationFailed("'Resume at' must not be below 'suspend below': the service would flap.",
                               code="thresholds_inverted",
                               fields={"resume_at": ["Must be at least the 'suspend below' level."]})
    return values


TARIFF_FIELDS = ("code", "name", "service", "currency", "period", "proration", "charge_suspended_days",
                 "suspend_below", "resume_at", "warn_below", "voluntary_suspension", "voluntary_suspension_max_days",
                 "promised_payment_amount", "promised_payment_days", "promised_payment_interval_days", "description")


@transaction.atomic
def create_tariff(*, actor, code, name, service, recurring_fee=None, valid_from=None, one_time_fees=None,
                  channel_prices=None, **fields) -> Tariff:
    """Create a tariff, and its first price version when `recurring_fee` is given.

    Refuses thresholds with *resume at* below *suspend below* (code `thresholds_inverted`).
    """
    _unique_code(Tariff, code)
    if service.archived_at:
        raise DomainError("The service is archived.", code="archived", fields={"service": ["Archived."]})
    unknown = set(fields) - set(TARIFF_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown tariff fields: {', '.join(sorted(unknown))}.", code="unknown_field")
    values = {"suspend_below": Decimal(0), "resume_at": Decimal(0), **fields}
    values = _check_tariff(values)
    tariff = recorded.create(Tariff, actor=actor, code=code, name=name, service=service, **values)
    if recurring_fee is not None:
        create_price_version(actor=actor, tariff=tariff, valid_from=valid_from or today(),
                             recurring_fee=recurring_fee, one_time_fees=one_time_fees or {},
                             channel_prices=channel_prices, allow_past=True)
    return tariff


@transaction.atomic
def update_tariff(tariff, *, actor, **changes) -> Tariff:
    """Change a tariff's rules (not its prices: those are price versions)."""
    if "code" in changes:
        _unique_code(Tariff, changes["code"], tariff.pk)
    if "service" in changes and changes["service"] != tariff.service and tariff_in_use(tariff):
        raise DomainError("The tariff has subscriptions; its service cannot change.", code="tariff_in_use",
                          fields={"service": ["The tariff is in use."]})
    if "currency" in changes and changes["currency"] != tariff.currency and tariff_in_use(tariff):
        raise DomainError("The tariff has subscriptions; its currency cannot change.", code="tariff_in_use",
                          fields={"currency": ["The tariff is in use."]})
    merged = {name: getattr(tariff, name) for name in TARIFF_MONEY + ("warn_below",)}
    merged.update({k: v for k, v in changes.items()})
    checked = _check_tariff(merged)
    for name in TARIFF_MONEY + ("warn_below",):
        if name in changes:
            changes[name] = checked[name]
    return recorded.update(tariff, actor=actor, **changes)


def tariff_in_use(tariff) -> bool:
    """Whether any subscription refers to the tariff (asked through the reverse relation,
    so the catalog needs no import of subscriptions)."""
    for rel in tariff._meta.related_objects:
        if rel.related_model._meta.app_label == "subscriptions":
            if rel.related_model._default_manager.filter(**{rel.field.name: tariff}).exists():
                return True
    return False


def _check_parameter(kind, value, choices):
    if value in (None, ""):
        return ""
    value = str(value)
    if kind == TariffParameter.Kind.INTEGER:
        try:
            int(value)
        except ValueError:
            raise ValidationFailed("Not a whole number.", code="invalid_parameter",
                                   fields={"value": ["Not a whole number."]}) from None
    elif kind == TariffParameter.Kind.DECIMAL:
        parse_amount(value, field="value")
    elif kind == TariffParameter.Kind.CHOICE and value not in (choices or []):
        raise ValidationFailed(f"{value!r} is not one of the choices.", code="invalid_parameter",
                               fields={"value": ["Not one of the choices."]})
    return value


@transaction.atomic
def create_parameter(*, actor, tariff, code, label, kind="text", value="", choices=(), required=True,
                     unit="") -> TariffParameter:
    if TariffParameter.objects.filter(tariff=tariff, code=code).exists():
        raise ValidationFailed(f"The tariff already has a parameter {code!r}.", code="duplicate_code",
                               fields={"code": ["Already used in this tariff."]})
    value = _check_parameter(kind, value, choices)
    return recorded.create(TariffParameter, actor=actor, tariff=tariff, code=code, label=label, kind=kind,
                           value=value, choices=list(choices or []), required=required, unit=unit)


@transaction.atomic
def update_parameter(param, *, actor, **changes) -> TariffParameter:
    changes.pop("tariff", None)
    if "value" in changes or "kind" in changes or "choices" in changes:
        changes["value"] = _check_parameter(changes.get("kind", param.kind), changes.get("value", param.value),
                                            changes.get("choices", param.choices))
    return recorded.update(param, actor=actor, **changes)


def resolve_parameters(tariff, given: dict | None) -> dict:
    """The parameters of a subscription on `tariff`: fixed ones from the tariff, the rest
    from `given`; missing required ones, unknown names and bad values are field errors."""
    given = dict(given or {})
    result, errors = {}, {}
    for param in tariff.parameters.all():
        if param.value:
            result[param.code] = param.value
            given.pop(param.code, None)
            continue
        value = given.pop(param.code, "")
        if value in ("", None):
            if param.required:
                errors[param.code] = ["Required by the tariff."]
            continue
        try:
            result[param.code] = _check_parameter(param.kind, value, param.choices)
        except ValidationFailed as exc:
            errors[param.code] = exc.fields.get("value", [exc.message])
    for name in given:
        errors[name] = ["The tariff has no such parameter."]
    if errors:
        raise ValidationFailed("Tariff parameters: " + "; ".join(f"{k}: {v[0]}" for k, v in errors.items()),
                               code="invalid_parameters", fields={"parameters": [f"{k}: {v[0]}" for k, v in errors.items()]})
    return result


def carry_parameters(tariff, current: dict | None, given: dict | None = None) -> dict:
    """The parameters of a subscription moving to `tariff`: the new tariff's fixed values
    replace the old ones; of the values it had (`current`), those the new tariff leaves
    open are kept where still valid (an integer still an integer, a choice still among
    the new choices) and dropped otherwise; `given` values override. Then as
    resolve_parameters (a required parameter left without a value is a field error)."""
    open_params = {p.code: p for p in tariff.parameters.all() if not p.value}
    values = {}
    for code, value in (current or {}).items():
        param = open_params.get(code)
        if param is None:
            continue
        try:
            values[code] = _check_parameter(param.kind, value, param.choices)
        except ValidationFailed:
            continue
    values.update(given or {})
    return resolve_parameters(tariff, {k: v for k, v in values.items() if v not in ("", None)})


# Price versions -----------------------------------------------------------------------

def _check_new_version_date(tariff, valid_from: dt.date, *, allow_past: bool):
    day = today()
    if PriceVersion.objects.filter(tariff=tariff, valid_from=valid_from).exists():
        raise Conflict(f"The tariff already has a price version from {valid_from}.", code="duplicate_version",
                       fields={"valid_from": ["A version from this date exists."]})
    applied = PriceVersion.objects.filter(tariff=tariff, valid_from__lte=day).order_by("-valid_from").first()
    if applied is not None and valid_from <= applied.valid_from:
        raise ValidationFailed(
            f"A price version cannot be back-dated before {applied.valid_from}, a version that has already applied.",
            code="backdated_version", fields={"valid_from": [f"Must be after {applied.valid_from}."]})
    if applied is not None and valid_from < day and not allow_past:
        raise ValidationFailed("A price version cannot start in the past: those days may have been charged.",
                               code="backdated_version", fields={"valid_from": [f"Must be {day} or later."]})


@transaction.atomic
def create_price_version(*, actor, tariff, valid_from, recurring_fee, note="", one_time_fees=None,
                         channel_prices=None, copy_previous=True, allow_past=False) -> PriceVersion:
    """A new price for `tariff` from `valid_from`.

    One-time fees and channel prices are copied from the version in force before it,
    then overridden by `one_time_fees` ({kind: amount}) and `channel_prices`
    ([{"channel"|"package": obj, "amount"}]). Refused (code `backdated_version`) on or
    before a version that has already applied, or in the past once any version applied.
    """
    Tariff.objects.select_for_update().get(pk=tariff.pk)  # one writer of a tariff's versions at a time
    if tariff.archived_at:
        raise DomainError("The tariff is archived.", code="archived")
    _check_new_version_date(tariff, valid_from, allow_past=allow_past)
    fee = _nonnegative(recurring_fee, "recurring_fee")
    previous = tariff.price_versions.filter(valid_from__lt=valid_from).order_by("-valid_from").first()
    version = recorded.create(PriceVersion, actor=actor, tariff=tariff, valid_from=valid_from, recurring_fee=fee,
                              note=note)
    fees = {}
    prices = {}
    if previous is not None and copy_previous:
        fees = {f.kind: f.amount for f in previous.one_time_fees.all()}
        prices = {(p.channel_id, p.package_id): (p.channel, p.package, p.amount)
                  for p in previous.channel_prices.select_related("channel", "package")}
    for kind, amount in (one_time_fees or {}).items():
        if kind not in OneTimeFee.Kind.values:
            raise ValidationFailed(f"Unknown one-time fee {kind!r}.", code="unknown_fee_kind",
                                   fields={"one_time_fees": [f"Unknown kind {kind!r}."]})
        fees[kind] = _nonnegative(amount, f"one_time_fees.{kind}")
    for item in channel_prices or []:
        channel, package = item.get("channel"), item.get("package")
        prices[(channel.pk if channel else None, package.pk if package else None)] = (
            channel, package, _nonnegative(item["amount"], "channel_prices.amount"))
    for kind, amount in sorted(fees.items()):
        OneTimeFee.objects.create(price_version=version, kind=kind, amount=amount)
    for channel, package, amount in prices.values():
        if (channel is None) == (package is None):
            raise ValidationFailed("A channel price names a channel or a package.", code="invalid_channel_price")
        ChannelPrice.objects.create(price_version=version, channel=channel, package=package, amount=amount)
    if fees or prices:
        recorded.record(version, actor=actor, action="prices", changes={
            "one_time_fees": [None, {k: str(v) for k, v in sorted(fees.items())}],
            "channel_prices": [None, sorted(f"{c.code if c else 'package:' + p.code}={a}" for c, p, a in prices.values())]})
    return version


def _check_not_applied(version):
    if version.valid_from <= today():
        raise DomainError(f"The price version from {version.valid_from} has applied and cannot change; "
                          "create a new version instead.", code="version_applied", status=409)


@transaction.atomic
def update_price_version(version, *, actor, **changes) -> PriceVersion:
    """Change a version that has not applied yet (valid from a future date)."""
    _check_not_applied(version)
    changes.pop("tariff", None)
    if "recurring_fee" in changes:
        changes["recurring_fee"] = _nonnegative(changes["recurring_fee"], "recurring_fee")
    if "valid_from" in changes and changes["valid_from"] != version.valid_from:
        _check_new_version_date(version.tariff, changes["valid_from"], allow_past=False)
    return recorded.update(version, actor=actor, **changes)


@transaction.atomic
def create_one_time_fee(*, actor, price_version, kind, amount) -> OneTimeFee:
    _check_not_applied(price_version)
    if OneTimeFee.objects.filter(price_version=price_version, kind=kind).exists():
        raise ValidationFailed("This version already has that fee.", code="duplicate_fee",
                               fields={"kind": ["Already priced in this version."]})
    return recorded.create(OneTimeFee, actor=actor, price_version=price_version, kind=kind,
                           amount=_nonnegative(amount, "amount"))


@transaction.atomic
def update_one_time_fee(fee, *, actor, **changes) -> OneTimeFee:
    _check_not_applied(fee.price_version)
    changes.pop("price_version", None)
    if "amount" in changes:
        changes["amount"] = _nonnegative(changes["amount"], "amount")
    return recorded.update(fee, actor=actor, **changes)


@transaction.atomic
def create_channel_price(*, actor, price_version, amount, channel=None, package=None) -> ChannelPrice:
    _check_not_applied(price_version)
    if (channel is None) == (package is None):
        raise ValidationFailed("Give a channel or a package (one of them).", code="invalid_channel_price",
                               fields={"channel": ["Give a channel or a package."]})
    if ChannelPrice.objects.filter(price_version=price_version, channel=channel, package=package).exists():
        raise ValidationFailed("Already priced in this version.", code="duplicate_price")
    return recorded.create(ChannelPrice, actor=actor, price_version=price_version, channel=channel, package=package,
                           amount=_nonnegative(amount, "amount"))


@transaction.atomic
def update_channel_price(price, *, actor, **changes) -> ChannelPrice:
    _check_not_applied(price.price_version)
    changes.pop("price_version", None)
    if "amount" in changes:
        changes["amount"] = _nonnegative(changes["amount"], "amount")
    return recorded.update(price, actor=actor, **changes)


# Device prices ------------------------------------------------------------------------

DEVICE_PRICE_MONEY = ("sale_price", "monthly_rent", "installment_total")


def check_device_price(values: dict) -> dict:
    """The device price's terms checked (amounts in cents, not negative; installments need both
    the total and 1..120 months); the values parsed."""
    for name in DEVICE_PRICE_MONEY:  # cents, as the agreements' forms and API take them
        if name in values:
            values[name] = parse_amount(values[name] if values[name] is not None else "0", field=name, places=2)
            if values[name] < 0:
                raise ValidationFailed(f"{name} must not be negative.", code="negative_amount",
                                       fields={name: ["Must not be negative."]})
    if values.get("currency"):
        check_currency(values["currency"])
    months = values.get("installment_months") or 0
    try:
        months = int(months)
    except (TypeError, ValueError):
        raise ValidationFailed("The number of months is a whole number.", code="invalid_installment_months",
                               fields={"installment_months": ["A whole number."]}) from None
    if months < 0 or months > 120:
        raise ValidationFailed("Installments run for 0 to 120 months.", code="invalid_installment_months",
                               fields={"installment_months": ["From 0 to 120."]})
    values["installment_months"] = months
    total = values.get("installment_total", Decimal(0))
    if total > 0 and months < 1:
        raise ValidationFailed("Installments need the number of months.", code="installment_months_required",
                               fields={"installment_months": ["At least 1 when there is an installment total."]})
    if months >= 1 and total <= 0:
        raise ValidationFailed("Installments need the total paid.", code="installment_total_required",
                               fields={"installment_total": ["Give the total paid in installments."]})
    return values


@transaction.atomic
def create_device_price(*, actor, code, name, currency=None, sale_price=0, monthly_rent=0, installment_total=0,
                        installment_months=0, description="") -> DevicePrice:
    """A row of the device price list; amounts of zero are not offered. The code is unique."""
    _unique_code(DevicePrice, code)
    values = check_device_price({"currency": currency or default_currency(), "sale_price": sale_price,
                                  "monthly_rent": monthly_rent, "installment_total": installment_total,
                                  "installment_months": installment_months})
    return recorded.create(DevicePrice, actor=actor, code=code, name=name, description=description, **values)


@transaction.atomic
def update_device_price(price, *, actor, **changes) -> DevicePrice:
    """Change a device price. Its code stays: the warehouse's items refer to it by code. The new
    amounts apply to agreements started from now on (those running keep theirs)."""
    price = DevicePrice.objects.select_for_update().get(pk=price.pk)
    if "code" in changes and changes["code"] != price.code:
        raise ValidationFailed("The code of a device price cannot change: warehouse items refer to it.",
                               code="code_fixed", fields={"code": ["Cannot change."]})
    changes.pop("code", None)
    merged = {name: getattr(price, name) for name in (*DEVICE_PRICE_MONEY, "installment_months", "currency")}
    merged.update(changes)
    checked = check_device_price(merged)
    for name in (*DEVICE_PRICE_MONEY, "installment_months"):
        if name in changes:
            changes[name] = checked[name]
    return recorded.update(price, actor=actor, **changes)
