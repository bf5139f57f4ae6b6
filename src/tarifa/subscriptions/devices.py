"""Sale, rent and installments of devices: subscriptions call inventory's services and book the fees.

- `sell_device`: the device is installed at the customer's premises for the subscription (from
  `source`, unless it is there already) and the price is booked as a one-time charge.
- `rent_device`: installed likewise; the monthly rent is charged per day installed, each
  calendar month's share = rent × days / days in the month (`rent_charges`), by
  `charge_device_fees(as_of)` (daily) and finally when the device leaves the premises
  (the `inventory.device_removed` event ends the rent: prorated to the day of return).
- `sell_in_installments`: N monthly charges of amount / N (the last takes the rounding), the first now.
Without an amount, each takes it from the item's catalog price (`inventory.Item.catalog_ref` names a
row of the catalog's device price list): sale price, monthly rent, installment total and months. A
given amount overrides it (the audit trail says so); neither is a field error naming the item.
Charges are ledger transfers debiting the billing account, credited to `revenue:devices`, tagged
with the subscription, the fee and the period, so they become invoice lines like any fee. Each is
idempotent by its key: re-running the charging books nothing twice.
"""

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.catalog import selectors as catalog
from tarifa.inventory import references as item_references
from tarifa.inventory import services as inventory
from tarifa.inventory.models import Device, Location
from tarifa.kernel.clock import today
from tarifa.kernel.errors import Conflict, ValidationFailed
from tarifa.kernel.events import subscribe
from tarifa.ledger import services as ledger

from .device_models import DeviceAgreement

SIX = Decimal("0.000001")


def rent_charges(monthly: Decimal, first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date, Decimal]]:
    """(from, to, amount) per calendar month for the days first..last: rent × days / days in the month."""
    out = []
    day = first
    while day <= last:
        month_days = calendar.monthrange(day.year, day.month)[1]
        end = min(last, day.replace(day=month_days))
        days = (end - day).days + 1
        out.append((day, end, (monthly * days / month_days).quantize(SIX, rounding=ROUND_HALF_UP)))
        day = end + dt.timedelta(days=1)
    return out


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _charge(agreement, *, actor, amount, fee, period, key, memo):
    if amount <= 0:
        return None
    sub = agreement.subscription
    revenue = ledger.system_account("revenue:devices", agreement.currency)
    return ledger.post_transfer(
        actor=actor, debit=sub.billing_account, credit=revenue, amount=amount, currency=agreement.currency,
        kind="charge", idempotency_key=key, reference=sub, enforce_limit=False,
        tags={"subscription": str(sub.pk), "fee": fee, "period": period, "device": agreement.device.serial},
        memo=memo)


def _place(sub, *, actor, serial, source):
    """The device at the subscription's customer's premises: installed from `source` if not there yet."""
    device = inventory.device_by_serial(serial)
    customer = sub.billing_account.customer
    if device.location.kind == Location.Kind.CUSTOMER and device.location.customer_id == customer.pk:
        return device
    if source is None and device.location.kind in (Location.Kind.WAREHOUSE, Location.Kind.TECHNICIAN):
        source = device.location  # from the stock it is in
    if source is None:
        raise ValidationFailed("Say where the device comes from (a warehouse or a technician's stock).",
                               code="source_required", fields={"source": ["Required: the device is not installed."]})
    inventory.install(actor=actor, device=device, source=source, customer=customer, subscription_ref=sub.number)
    return Device.objects.get(pk=device.pk)


# The warehouse checks an item's catalog_ref against the catalog's device prices through this
# (inventory and catalog are siblings and may not import each other; this layer sees both).
def _describe_device_price(code):
    price = catalog.device_price(code)
    return (str(price), price.archived_at is not None) if price is not None else None


item_references.register_catalog_refs(describe=_describe_device_price, choices=catalog.device_price_choices)

WHAT = {"sale": "sale price", "rent": "monthly rent", "installments": "installment terms"}


def catalog_terms(item, mode: str, currency: str | None = None):
    """(amount, months, price) from the item's catalog price for `mode`; amount None when the item
    has no usable price for it (no catalog_ref, an archived price, zero for that mode, another
    currency than `currency`)."""
    price = catalog.device_price(item.catalog_ref)
    if price is None or price.archived_at is not None:
        return None, 0, price
    if currency is not None and price.currency != currency:
        return None, 0, price
    amount, months = price.terms(mode)
    return amount, months, price


def _terms(item, *, mode, amount, months, currency):
    """The agreement's amount and months: given ones win over the catalog's; a message for the
    audit trail saying where they came from."""
    field = "amount"
    label = f"{item} ({item.code})"
    if amount is not None and Decimal(amount) < 0:
        raise ValidationFailed("The amount cannot be negative.", code="invalid_amount",
                               fields={"amount": ["Zero or more."]})
    listed, listed_months, price = catalog_terms(item, mode, currency)
    if (amount is None and listed is None) or (mode == "installments" and not months and not listed_months):
        if price is not None and price.archived_at is not None:
            why = f"its catalog price {price.code} is archived"
        elif price is not None and price.currency != currency:
            why = f"its catalog price {price.code} is in {price.currency}, the subscription pays in {currency}"
        elif price is not None:
            why = f"its catalog price {price.code} offers no {WHAT[mode]}"
        else:
            why = "it has no catalog price" if not item.catalog_ref else \
                f"its catalog reference {item.catalog_ref} names no device price"
        if amount is not None and mode == "installments":
            field, hint = "months", "give the number of months"
        else:
            hint = "give the amount" + (" and the months" if mode == "installments" else "")
        raise ValidationFailed(f"No {WHAT[mode]} for {label}: {why}; {hint}.", code="no_catalog_price",
                               fields={field: [f"Required: {label} has no catalog {WHAT[mode]}."]})
    given = amount is not None or (mode == "installments" and bool(months))
    final_amount = Decimal(amount) if amount is not None else listed
    final_months = int(months) if months else listed_months
    if not given:
        note = f"from catalog price {price.code}"
    elif listed is None:
        note = "given by the operator (no catalog price)"
    else:
        listed_text = f"{listed}" + (f" in {listed_months} months" if mode == "installments" else "")
        note = f"given by the operator, overriding catalog price {price.code} ({listed_text})"
    return final_amount, final_months, note


def _start(sub, *, actor, serial, source, mode, amount, installments=0):
    if sub.status == "terminated":
        raise Conflict("The subscription is terminated.", code="terminated")
    item = inventory.device_by_serial(serial).item
    amount, installments, note = _terms(item, mode=mode, amount=amount, months=installments,
                                        currency=sub.tariff.currency)
    if mode == DeviceAgreement.Mode.INSTALLMENTS and not 1 <= installments <= 120:
        raise ValidationFailed("From 1 to 120 installments.", code="invalid_installments",
                               fields={"installments": ["From 1 to 120."]})
    device = _place(sub, actor=actor, serial=serial, source=source)
    if DeviceAgreement.objects.filter(device=device, ended_on__isnull=True,
                                      mode__in=["rent", "sale", "installments"]).exclude(mode="sale").exists():
        raise Conflict(f"{device.serial} is rented or being paid off already.", code="device_agreement_exists")
    agreement = recorded.create(DeviceAgreement, actor=actor, subscription=sub, device=device, mode=mode,
                                amount=amount, currency=sub.tariff.currency, installments=installments,
                                started_on=today())
    recorded.record(agreement, actor=actor, action="price",
                    changes={"amount": [None, str(amount)], "source": [None, note]},
                    message=f"{agreement.get_mode_display()} {device.serial}: {amount} {agreement.currency} "
                            + (f"in {installments} months " if mode == "installments" else "") + note)
    return agreement


@transaction.atomic
def sell_device(sub, *, actor, serial, price=None, source=None) -> DeviceAgreement:
    """Sell a device to the subscription's customer: one one-time charge of `price` (None: the
    item's catalog sale price)."""
    agreement = _start(sub, actor=actor, serial=serial, source=source, mode=DeviceAgreement.Mode.SALE, amount=price)
    _charge(agreement, actor=actor, amount=agreement.amount, fee="device_sale", period=str(agreement.started_on),
            key=f"device-sale:{agreement.pk}", memo=f"device sale {agreement.device.serial} {sub.number}")
    agreement.ended_on = agreement.started_on
    agreement.save(update_fields=["ended_on"])
    return agreement


@transaction.atomic
def rent_device(sub, *, actor, serial, monthly=None, source=None) -> DeviceAgreement:
    """Rent a device: `monthly` (None: the item's catalog monthly rent) prorated per day installed,
    from today; today's share is charged now."""
    agreement = _start(sub, actor=actor, serial=serial, source=source, mode=DeviceAgreement.Mode.RENT,
                       amount=monthly)
    charge_agreement(agreement, as_of=today(), actor=actor)
    agreement.refresh_from_db()
    return agreement


@transaction.atomic
def sell_in_installments(sub, *, actor, serial, total=None, installments=None, source=None) -> DeviceAgreement:
    """Sell a device paid in `installments` monthly charges of `total`; the first is charged now.
    Either not given: the item's catalog installment terms."""
    if installments is not None and int(installments) < 1:
        raise ValidationFailed("At least one installment.", code="invalid_installments",
                               fields={"installments": ["At least 1."]})
    agreement = _start(sub, actor=actor, serial=serial, source=source, mode=DeviceAgreement.Mode.INSTALLMENTS,
                       amount=total, installments=int(installments) if installments else 0)
    charge_agreement(agreement, as_of=today(), actor=actor)
    agreement.refresh_from_db()
    return agreement


def charge_agreement(agreement, *, as_of: dt.date, actor="system") -> int:
    """Book what is due by `as_of` and not booked yet; returns how many charges were booked."""
    with transaction.atomic():
        agreement = DeviceAgreement.objects.select_for_update().select_related(
            "subscription__billing_account", "device").get(pk=agreement.pk)
        booked = 0
        if agreement.mode == DeviceAgreement.Mode.RENT:
            last = min(as_of, agreement.ended_on) if agreement.ended_on else as_of
            first = (agreement.charged_through + dt.timedelta(days=1)) if agreement.charged_through \
                else agreement.started_on
            for start, end, amount in rent_charges(agreement.amount, first, last):
                _charge(agreement, actor=actor, amount=amount, fee="device_rent", period=f"{start}/{end}",
                        key=f"device-rent:{agreement.pk}:{start}:{end}",
                        memo=f"device rent {agreement.device.serial} {start}–{end}")
                booked += 1
            if last >= first:
                agreement.charged_through = last
                agreement.save(update_fields=["charged_through"])
        elif agreement.mode == DeviceAgreement.Mode.INSTALLMENTS:
            n = agreement.installments
            each = agreement.installment_amount
            while agreement.installments_charged < n:
                k = agreement.installments_charged
                due = _add_months(agreement.started_on, k)
                if due > as_of:
                    break
                amount = agreement.amount - each * (n - 1) if k == n - 1 else each
                _charge(agreement, actor=actor, amount=amount, fee="device_installment", period=str(due),
                        key=f"device-installment:{agreement.pk}:{k + 1}",
                        memo=f"device installment {k + 1}/{n} {agreement.device.serial}")
                agreement.installments_charged = k + 1
                booked += 1
            if agreement.installments_charged == n and agreement.ended_on is None:
                agreement.ended_on = as_of
            agreement.save(update_fields=["installments_charged", "ended_on"])
        return booked


def charge_device_fees(*, as_of: dt.date, actor="system") -> int:
    """The daily job: every running rent through `as_of`, every installment due by it."""
    booked = 0
    for agreement in DeviceAgreement.objects.filter(ended_on__isnull=True).exclude(mode="sale").order_by("pk"):
        booked += charge_agreement(agreement, as_of=as_of, actor=actor)
    return booked


def end_rent(agreement, *, actor, day: dt.date) -> DeviceAgreement:
    """End a rent on `day` (the last day charged): the month's share is prorated to it."""
    with transaction.atomic():
        agreement = DeviceAgreement.objects.select_for_update().get(pk=agreement.pk)
        if agreement.mode != DeviceAgreement.Mode.RENT or agreement.ended_on is not None:
            return agreement
        agreement.ended_on = max(day, agreement.started_on)
        agreement.save(update_fields=["ended_on"])
        charge_agreement(agreement, as_of=agreement.ended_on, actor=actor)
        recorded.record(agreement, actor=actor, action="end", message=f"Rent ended {agreement.ended_on}")
        return agreement


def end_installments(agreement, *, actor, day: dt.date) -> DeviceAgreement:
    """The device went back before it was paid off: the installments stop. Those due by `day` are
    charged (and stay charged); none after it."""
    with transaction.atomic():
        agreement = DeviceAgreement.objects.select_for_update().get(pk=agreement.pk)
        if agreement.mode != DeviceAgreement.Mode.INSTALLMENTS or agreement.ended_on is not None:
            return agreement
        charge_agreement(agreement, as_of=day, actor=actor)
        agreement.refresh_from_db()
        if agreement.ended_on is None:
            agreement.ended_on = max(day, agreement.started_on)
            agreement.save(update_fields=["ended_on"])
            recorded.record(agreement, actor=actor, action="end",
                            message=f"Installments stopped {agreement.ended_on}: device returned, "
                                    f"{agreement.installments_charged}/{agreement.installments} charged")
        return agreement


@subscribe("inventory.device_removed")
def _device_removed(event):
    """A device left the customer's premises (returned, swapped, written off): a rent ends
    (prorated to the day), installments stop (none charged after the day)."""
    day = dt.date.fromisoformat(event.payload["day"])
    for agreement in DeviceAgreement.objects.filter(device_id=event.object_id, ended_on__isnull=True,
                                                    mode__in=["rent", "installments"]):
        if agreement.mode == DeviceAgreement.Mode.RENT:
            end_rent(agreement, actor="system", day=day)
        else:
            end_installments(agreement, actor="system", day=day)


def start_agreement(sub, *, actor, serial, agreement, amount=None, months=None, source=None) -> DeviceAgreement:
    """One entry for the screen and the API: `agreement` is sale, rent or installments; `amount`
    (and `months`) None: from the item's catalog price."""
    if agreement == DeviceAgreement.Mode.SALE:
        return sell_device(sub, actor=actor, serial=serial, price=amount, source=source)
    if agreement == DeviceAgreement.Mode.RENT:
        return rent_device(sub, actor=actor, serial=serial, monthly=amount, source=source)
    if agreement == DeviceAgreement.Mode.INSTALLMENTS:
        return sell_in_installments(sub, actor=actor, serial=serial, total=amount, installments=months, source=source)
    raise ValidationFailed("Sale, rent or installments.", code="invalid_agreement",
                           fields={"agreement": ["sale, rent or installments"]})


def stock_devices():
    """Devices the operator can sell or rent: in a warehouse or a technician's stock."""
    return Device.objects.filter(location__kind__in=[Location.Kind.WAREHOUSE, Location.Kind.TECHNICIAN])
