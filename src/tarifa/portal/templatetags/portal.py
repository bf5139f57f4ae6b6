"""Amounts and dates in the portal user's language: `{{ amount|pmoney:currency }}`,
`{{ day|pdate }}`. English: 1,234.50 USD and 2026-12-06 (the operator's screens' formats);
Russian: 1 234,50 USD and 06.12.2026. Money is rounded by kernel.money's one rule."""

import datetime as dt

from django import template
from django.utils import timezone, translation

from tarifa.kernel.money import format_amount

register = template.Library()


@register.filter
def pmoney(amount, currency):
    if amount is None or amount == "":
        return ""
    text = format_amount(amount, currency)  # "1,234.50 USD"
    if translation.get_language() == "ru":
        number, _, code = text.partition(" ")
        number = number.replace(",", "\u00a0").replace(".", ",")
        text = f"{number}\u00a0{code}" if code else number
    return text


@register.filter
def pdate(value):
    if not value:
        return ""
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        return value.strftime("%d.%m.%Y %H:%M" if translation.get_language() == "ru" else "%Y-%m-%d %H:%M")
    return value.strftime("%d.%m.%Y" if translation.get_language() == "ru" else "%Y-%m-%d")
