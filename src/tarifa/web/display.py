"""How the generic list and detail screens show a value to a person.

One place decides, for every registered screen (nothing to write per screen):
- **money** in the currency's units ("4.03 USD", the precise amount in the title): a DecimalField
  is money when its model has a `currency` field beside it, or, failing that, a foreign key to a
  model that has one (an invoice line → its invoice's currency, a price version → its tariff's);
  `ModelScreens.money` declares other cases ({"field": "path__to__currency"}) or turns one off
  ({"field": None}). Other decimals lose their trailing zeros ("3", not "3.000000").
- foreign keys by their number or name, linked to their page when the user may view it;
- True/False as Yes/No; dates and times in one format, in TARIFA_TIME_ZONE;
- dicts as definition lists and lists as comma lists (never "{'" or "['");
- a screen's own `formats` ({"field": callable(obj) -> str}) for what only its app knows
  (usage in 1m29s or MB by the record's usage type).
"""

import datetime
import json
import uuid
from decimal import Decimal

from django.db import models
from django.template.defaultfilters import date as date_filter
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from tarifa.kernel.money import format_amount
from tarifa.kernel.units import yes_no

from . import registry

DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"


def _field(model, name):
    try:
        f = model._meta.get_field(name)
    except Exception:
        return None
    return f if hasattr(f, "verbose_name") else None  # not a reverse relation


def _resolve(obj, name):
    """(the object owning the last part, its model field or None, the raw value)."""
    owner, value = obj, obj
    parts = name.split("__")
    for i, part in enumerate(parts):
        if value is None:
            return owner, None, None
        owner = value
        value = getattr(value, part, None)
        if callable(value) and not hasattr(value, "_meta") and not isinstance(value, models.Manager):
            value = value()
    return owner, _field(type(owner), parts[-1]) if owner is not None and hasattr(owner, "_meta") else None, value


def currency_path(model, field_name: str, screens=None) -> str | None:
    """The path to the currency of a money field of `model`, or None when it is not money."""
    declared = (screens.money if screens is not None and getattr(screens, "money", None) else {})
    if field_name in declared:
        return declared[field_name]
    field = _field(model, field_name)
    if not isinstance(field, models.DecimalField):
        return None
    names = {f.name for f in model._meta.concrete_fields}
    if "currency" in names:
        return "currency"
    for f in model._meta.concrete_fields:
        if isinstance(f, models.ForeignKey) and "currency" in {g.name for g in f.related_model._meta.concrete_fields}:
            return f"{f.name}__currency"
    return None


def record_currency(obj) -> str | None:
    """The currency of a record: its own, or that of the first record it refers to that has one."""
    own = getattr(obj, "currency", None)
    if isinstance(own, str) and own:
        return own
    for f in type(obj)._meta.concrete_fields:
        if isinstance(f, models.ForeignKey) and "currency" in {g.name for g in f.related_model._meta.concrete_fields}:
            return _currency_of(obj, f"{f.name}__currency")
    return None


def _currency_of(owner, path):
    value = owner
    for part in path.split("__"):
        if value is None:
            return None
        value = getattr(value, part, None)
    return value


def _decimal_text(value: Decimal) -> str:
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):f}"
    return f"{value.normalize():f}"


def _datetime_text(value):
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return date_filter(value, DATETIME_FORMAT)
    return date_filter(value, DATE_FORMAT)


def _structure(value, depth=0):
    """A dict as a definition list, a list as a comma list (or a table of dicts), as safe HTML."""
    if isinstance(value, dict):
        if not value:
            return mark_safe('<span class="muted">—</span>')
        return format_html('<dl class="inline">{}</dl>', format_html_join(
            "", "<dt>{}</dt><dd>{}</dd>",
            ((str(k).replace("_", " "), _structure(v, depth + 1)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        if not value:
            return mark_safe('<span class="muted">—</span>')
        if all(isinstance(v, dict) for v in value) and depth < 2:
            keys = list(dict.fromkeys(k for v in value for k in v))
            head = format_html_join("", "<th>{}</th>", ((str(k).replace("_", " "),) for k in keys))
            body = format_html_join("", "<tr>{}</tr>", ((format_html_join(
                "", "<td>{}</td>", ((_structure(v.get(k, ""), depth + 1),) for k in keys)),) for v in value))
            return format_html('<table class="inner"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)
        return format_html_join(", ", "{}", ((_structure(v, depth + 1),) for v in value))
    if isinstance(value, bool):
        return yes_no(value)
    if value is None:
        return "—"
    if isinstance(value, str) and len(value) == 36:
        from .timeline import _looks_like_uuid, _record_name

        if _looks_like_uuid(value):
            return _record_name(None, value, None)
    return str(value)


def _link(related, user):
    from django.urls import NoReverseMatch

    text = str(related)
    screens = registry.screens_for(related)
    if screens is None or (user is not None and not user.has_perm(screens.perm("view"))):
        return text
    try:
        url = screens.url("detail", related)
    except NoReverseMatch:
        url = None
    return format_html('<a href="{}">{}</a>', url, text) if url else text


def render_value(obj, name, *, screens=None, user=None, html=True, beside=()):
    """The value of column/field `name` (a path, e.g. "billing_account__number") of `obj` as a person
    reads it: safe HTML when `html`, else plain text (CSV exports meant for people, no grouping).
    An amount carries its currency code unless the currency is one of the columns `beside` it."""
    if screens is not None and getattr(screens, "formats", None) and name in screens.formats:
        return screens.formats[name](obj)
    owner, field, value = _resolve(obj, name)
    if value is None or value == "":
        return ""
    if field is not None and field.choices and not isinstance(value, bool | list):
        display = getattr(owner, f"get_{field.name}_display", None)
        if callable(display):
            return display()
    if isinstance(value, models.Model):
        return _link(value, user) if html else str(value)
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, Decimal):
        if field is not None:
            path = currency_path(type(owner), field.name, screens if owner is obj else None)
        else:  # an annotated column (a balance, say) of a record that has a currency
            path = "currency" if isinstance(getattr(owner, "currency", None), str) else None
        if path:
            currency = _currency_of(owner, path)
            prefix = name.rsplit("__", 1)[0] + "__" if "__" in name else ""
            text = format_amount(value, currency, grouping=html, code=f"{prefix}{path}" not in beside)
            if html:
                return format_html('<span class="money" title="{} {}">{}</span>', value, currency or "", text)
            return text
        return _decimal_text(value)
    if isinstance(value, datetime.date | datetime.datetime):
        return _datetime_text(value)
    if isinstance(value, dict | list | tuple):
        if html:
            return _structure(value)
        return json.dumps(value, default=str, ensure_ascii=False) if value else ""
    if isinstance(field, models.FileField):
        name = getattr(value, "name", "") or ""
        if not name:
            return ""
        short = name.rsplit("/", 1)[-1]
        short = short if len(short) < 40 else "…" + short[-12:]
        return format_html('<a href="{}">{}</a>', value.url, short) if html and hasattr(value, "url") else name
    if isinstance(field, models.URLField) and html:
        from urllib.parse import urlsplit

        parts = urlsplit(str(value))
        return format_html('<a href="{}" rel="noreferrer">{}{}{}</a>', value, parts.netloc, parts.path,
                           "?…" if parts.query else "")
    if isinstance(value, uuid.UUID) and field is not None and field.primary_key:
        return str(value)
    if isinstance(value, SafeString):
        return value
    return str(value)


def detail_field_names(model, declared=None):
    """The fields a detail page lists by default: every concrete field but the technical ones (the
    record's own UUID, the password, a secret stored encrypted), a foreign key under its own name."""
    if declared:
        return declared
    hidden = {"password", "id"}
    return [f.name for f in model._meta.concrete_fields
            if f.name not in hidden and not getattr(f, "secret", False)]
