"""Filling Django forms as a browser would, for tests: the form-submission suite
(`tarifa/web/tests/test_form_suite.py`) and any test that submits a screen's form."""

import datetime as dt
import itertools
import uuid
from decimal import Decimal

from django import forms
from django.db import models

_counter = itertools.count(1)


def unique_token() -> str:
    return f"{next(_counter):03d}{uuid.uuid4().hex[:5]}".upper()


def as_post_value(field, value):
    """A form field's value (initial or python) as the browser would send it."""
    if value is None:
        return None
    if isinstance(field, forms.BooleanField):
        return "on" if value else None
    if isinstance(field, forms.ModelMultipleChoiceField):
        return [str(getattr(v, "pk", v)) for v in value]
    if isinstance(field, forms.ModelChoiceField):
        if isinstance(value, models.Model):
            return str(getattr(value, field.to_field_name or "pk"))
        return str(value)
    if isinstance(field, forms.MultipleChoiceField):
        return [str(v) for v in value]
    if isinstance(value, (list, tuple, dict)):
        return field.prepare_value(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value.pk)
    prepared = field.prepare_value(value)
    return "" if prepared is None else str(prepared)


def guess(name, field):
    """A valid value for a field nobody gave a value for; None when it cannot be guessed."""
    if isinstance(field, forms.ModelMultipleChoiceField):
        first = field.queryset.first()
        return [str(getattr(first, field.to_field_name or "pk"))] if first is not None else None
    if isinstance(field, forms.ModelChoiceField):
        first = field.queryset.first()
        return str(getattr(first, field.to_field_name or "pk")) if first is not None else None
    if isinstance(field, forms.MultipleChoiceField):
        choices = [str(k) for k, _ in field.choices if k not in ("", None)]
        return choices[:1] or None
    if isinstance(field, (forms.ChoiceField, forms.TypedChoiceField)):
        choices = [k for k, _ in field.choices if k not in ("", None)]
        return str(choices[0]) if choices else None
    if isinstance(field, forms.BooleanField):
        return "on" if field.required else None
    if isinstance(field, forms.DateTimeField):
        from tarifa.kernel.clock import now

        return now().replace(microsecond=0).isoformat()
    if isinstance(field, forms.DateField):
        from tarifa.kernel.clock import today

        return today().isoformat()
    if isinstance(field, forms.TimeField):
        return "08:00"
    from tarifa.web.forms import AmountField

    if isinstance(field, AmountField):  # an amount as typed: plain decimal text
        return str(max(Decimal(field.min_value), Decimal("1.00")) if field.min_value is not None else "1.00")
    if isinstance(field, forms.DecimalField):
        low = field.min_value if field.min_value is not None else Decimal(0)
        return str(max(Decimal(low), Decimal("1.00")) if field.max_value is None or field.max_value >= 1 else low)
    if isinstance(field, forms.IntegerField):
        low = field.min_value if field.min_value is not None else 0
        return str(max(low, 1) if field.max_value is None or field.max_value >= 1 else low)
    if isinstance(field, forms.EmailField):
        return f"suite{unique_token().lower()}@example.com"
    if isinstance(field, forms.URLField):
        return "https://example.com/hook"
    if isinstance(field, forms.FileField):
        return None
    if isinstance(field, forms.CharField):
        lowered = name.lower()
        if lowered.endswith(("amount", "fee", "limit", "price", "nominal", "cash")):
            return "1.00"
        if lowered == "country":
            return "US"
        if lowered == "period":
            from tarifa.kernel.clock import today

            last_month = today().replace(day=1) - dt.timedelta(days=1)
            return f"{last_month:%Y-%m}"
        if "phone" in lowered or lowered == "msisdn":
            return f"+1555{next(_counter) % 10_000_000:07d}"
        if "email" in lowered:
            return f"suite{unique_token().lower()}@example.com"
        if lowered in ("iccid", "imsi"):  # digits only (subscriptions normalise identifiers)
            return f"{'8901' if lowered == 'iccid' else '00101'}{next(_counter) % 10_000_000_000:010d}"
        if lowered == "mac_address":
            n = next(_counter) % 2 ** 24
            return "02:00:00:" + ":".join(f"{(n >> shift) & 0xff:02x}" for shift in (16, 8, 0))
        token = unique_token()
        if lowered in ("code", "number", "login", "username") or lowered.endswith("_code"):
            text = f"s{token.lower()}"
        elif lowered == "prefix":
            text = f"99{next(_counter):06d}"
        else:
            text = f"Suite {name} {token}"
        max_length = field.max_length or 40
        return text[:max_length]
    return None




def initial_post_data(form, **overrides) -> dict:
    """The POST body a browser sends for `form` as shown (its initial values), with overrides;
    required fields left empty get a guessed valid value."""
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = as_post_value(field, form[name].value())
        if value in (None, "", []) and field.required:
            value = guess(name, field)
        if value is not None:
            data[name] = value
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}
