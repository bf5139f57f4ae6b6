"""A record's history as a person reads it: one sentence per event ("Changed: Tariff from Home 100 to
Home 500", "Suspended — balance 0.23 USD below the day's fee"), the raw field changes one click away,
every value in words and units (a referenced record by its number or name, Yes/No, amounts in the
currency's units), never a UUID or a Python literal."""

import datetime
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.apps import apps
from django.db import models
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from tarifa.kernel.money import format_amount
from tarifa.kernel.units import yes_no

from . import display

# Fields every record carries: their values in a "create" say nothing to a person.
TECHNICAL = {"id", "branch", "created_at", "updated_at", "password", "last_login"}

ACTION_LABELS = {
    "create": "Created", "update": "Changed", "archive": "Archived", "restore": "Restored",
    "suspend": "Suspended", "resume": "Resumed", "terminate": "Terminated", "activate": "Activated",
    "change_tariff": "Tariff changed", "schedule_tariff_change": "Tariff change scheduled",
    "issue": "Issued", "close": "Closed", "open": "Opened", "reverse": "Reversed", "refund": "Refunded",
    "sign": "Signed", "revoke": "Revoked", "deactivate": "Deactivated", "reinstate": "Reinstated",
    "set_password": "Password set", "switch_payment_mode": "Payment mode switched", "redeem": "Redeemed",
    "transfer_funds": "Funds transferred", "late_fee": "Late fee charged", "expire": "Expired",
}


@dataclass
class Change:
    label: str
    old: str
    new: str


@dataclass
class Entry:
    event: object
    title: str
    summary: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    other_object: str = ""


def action_label(action: str) -> str:
    return _(ACTION_LABELS.get(action, capfirst(action.replace("_", " "))))


def _model_of(label: str):
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _field(model, name):
    if model is None:
        return None
    try:
        f = model._meta.get_field(name)
        return f if hasattr(f, "verbose_name") else None
    except Exception:
        for f in model._meta.concrete_fields:
            if getattr(f, "attname", None) == name:
                return f
    return None


def value_text(model, name, value, *, currency=None, cache=None) -> str:
    """One recorded value (as JSON kept it) in words and units."""
    if value is None or value == "":
        return "—"
    f = _field(model, name)
    if isinstance(f, models.FileField):
        return _("a file") if value else "—"
    if isinstance(value, bool):
        return yes_no(value)
    if f is not None and f.choices and not isinstance(value, list | dict):
        choices = {str(k): v for k, v in f.flatchoices}
        if str(value) in choices:
            return str(choices[str(value)])
    if isinstance(f, models.ForeignKey) or (f is None and _looks_like_uuid(value)):
        related = f.related_model if isinstance(f, models.ForeignKey) else None
        return _record_name(related, value, cache)
    if isinstance(f, models.DecimalField) or (isinstance(value, str) and _is_decimal(value) and "." in value):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        if currency and f is not None and display.currency_path(model, f.name):
            return format_amount(number, currency)
        return display._decimal_text(number)
    if isinstance(f, models.DateTimeField) and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return display._datetime_text(parsed)
    if isinstance(f, models.DateField) and isinstance(value, str):
        parsed = parse_date(value)
        if parsed is not None:
            return display._datetime_text(parsed)
    if isinstance(value, datetime.date):
        return display._datetime_text(value)
    if isinstance(value, dict | list):
        return _plain(value, cache, currency)
    return str(value)


def _plain(value, cache, currency=None) -> str:
    """A recorded structure in words: "activation: 10.00 USD; speed: 100", amounts in units."""
    if isinstance(value, dict):
        return "; ".join(f"{str(k).replace('_', ' ')}: {_plain(v, cache, currency)}"
                         for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(_plain(v, cache, currency) for v in value) or "—"
    if isinstance(value, bool):
        return yes_no(value)
    if value is None:
        return "—"
    if _looks_like_uuid(value):
        return _record_name(None, value, cache)
    if isinstance(value, str) and "." in value and _is_decimal(value):
        number = Decimal(value)
        return format_amount(number, currency) if currency else display._decimal_text(number)
    return str(value)


def _is_decimal(text: str) -> bool:
    try:
        Decimal(text)
        return True
    except (InvalidOperation, ValueError):
        return False


def _looks_like_uuid(value) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        return False


def _record_name(model, pk, cache) -> str:
    """A referenced record by its name (str), found in its model or, unknown, in any registered one."""
    cache = {} if cache is None else cache
    key = (model, str(pk))
    if key in cache:
        return cache[key]
    candidates = [model] if model is not None else [s.model for s in display.registry.all_screens()]
    name = None
    for m in candidates:
        pk_field = m._meta.pk
        if not isinstance(pk_field, models.UUIDField) and model is None:
            continue
        try:
            obj = m._default_manager.filter(pk=pk).first()
        except Exception:
            obj = None
        if obj is not None:
            name = str(obj)
            break
    cache[key] = name or _("(a removed record)")
    return cache[key]


def entries(events, obj=None) -> list[Entry]:
    """Timeline entries for audit events (newest first, as given)."""
    cache: dict = {}
    out = []
    own = str(obj.pk) if obj is not None else None
    for event in events:
        model = _model_of(event.object_type)
        currency = None
        if isinstance(event.changes, dict):
            cur = event.changes.get("currency")
            currency = cur[1] if isinstance(cur, list | tuple) and len(cur) == 2 else None
        if currency is None and obj is not None and type(obj) is model and str(obj.pk) == event.object_id:
            currency = display.record_currency(obj)
        changes = []
        items = event.changes.items() if isinstance(event.changes, dict) else []
        for name, change in items:
            if name in TECHNICAL:
                continue
            if isinstance(change, list | tuple) and len(change) == 2:
                old, new = change
            else:
                old, new = None, change
            f = _field(model, name)
            label = capfirst(str(f.verbose_name)) if f is not None else capfirst(name.replace("_", " "))
            changes.append(Change(label, value_text(model, name, old, currency=currency, cache=cache),
                                  value_text(model, name, new, currency=currency, cache=cache)))
        summary = []
        if event.action != "create":
            for c in changes[:3]:
                if c.old == "—":
                    summary.append(_("%(field)s: %(new)s") % {"field": c.label, "new": c.new})
                else:
                    summary.append(_("%(field)s from %(old)s to %(new)s") % {"field": c.label, "old": c.old,
                                                                          "new": c.new})
            if len(changes) > 3:
                summary.append(_("and %(n)s more") % {"n": len(changes) - 3})
        other = event.object_repr if own is not None and event.object_id != own else ""
        out.append(Entry(event=event, title=action_label(event.action), summary=summary, changes=changes,
                         other_object=other))
    return out
