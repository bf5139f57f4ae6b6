"""Money is never a float (rule 3).

Amounts are `Decimal`; the ledger keeps 6 decimal places; every amount carries an
ISO 4217 currency; documents round to the currency's minor unit with a stated rule.
"""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import ValidationFailed

LEDGER_PLACES = 6
LEDGER_QUANTUM = Decimal(1).scaleb(-LEDGER_PLACES)
MAX_DIGITS = 20

# ISO 4217 code -> minor unit digits (the currencies operators bill in; extend as needed).
CURRENCIES: dict[str, int] = {
    "AED": 2, "AMD": 2, "ARS": 2, "AUD": 2, "AZN": 2, "BGN": 2, "BHD": 3, "BRL": 2, "BYN": 2,
    "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "DZD": 2, "EGP": 2,
    "EUR": 2, "GBP": 2, "GEL": 2, "GHS": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2,
    "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KRW": 0, "KWD": 3, "KZT": 2,
    "LBP": 2, "MAD": 2, "MDL": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "OMR": 3,
    "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "SAR": 2,
    "SEK": 2, "SGD": 2, "THB": 2, "TJS": 2, "TND": 3, "TMT": 2, "TRY": 2, "TWD": 2, "TZS": 2,
    "UAH": 2, "UGX": 0, "USD": 2, "UZS": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}

CURRENCY_CHOICES = sorted((code, code) for code in CURRENCIES)


def default_currency() -> str:
    """The currency a new tariff, account or payment form starts with: the one setting
    TARIFA_DEFAULT_CURRENCY (environment variable of the same name; USD when unset)."""
    from django.conf import settings

    return getattr(settings, "TARIFA_DEFAULT_CURRENCY", "USD")


def check_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValidationFailed(f"Unknown currency {code!r}: expected an ISO 4217 code.",
                               code="invalid_currency", fields={"currency": [f"Unknown currency {code!r}."]})
    return code


def minor_quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-CURRENCIES[check_currency(currency)])


AMOUNT_PATTERN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
INTEGER_DIGITS = MAX_DIGITS - LEDGER_PLACES  # 14: what the ledger's numeric(20, 6) columns hold


def _refuse(code: str, message: str, field: str, field_message: str):
    raise ValidationFailed(message, code=code, fields={field: [field_message]})


def parse_amount(value, *, field: str = "amount", positive: bool = False, places: int = LEDGER_PLACES,
                 integer_digits: int = INTEGER_DIGITS) -> Decimal:
    """Parse an amount: the one parser for every amount the API, the UI, imports and the CLI take.

    Accepted: a plain decimal string of ASCII digits (`"10"`, `"-4.50"`), an int, or a finite
    Decimal. Refused, with `invalid_amount`: floats, exponents (`"1e2"`), digit separators
    (`"5_000"`, `"5,000"`), other scripts' digits (full-width `"１０"`), a leading `+` or `.`,
    blanks inside. At most `integer_digits` digits before the point (`amount_too_large`; the
    columns would overflow) and `places` after it (`amount_too_precise`, unless only zeros).
    """
    if isinstance(value, (float, bool)) or value is None:
        _refuse("invalid_amount", f"{field} must be a decimal string, not {type(value).__name__}.", field,
                "Give the amount as a decimal string, e.g. \"10.00\".")
    if isinstance(value, Decimal):
        if not value.is_finite():
            _refuse("invalid_amount", f"{field} must be finite.", field, "Not finite.")
        if value != 0 and value.adjusted() >= integer_digits:
            _refuse("amount_too_large", f"{field} is too large.", field,
                    f"At most {integer_digits} digits before the decimal point.")
        text = format(value, "f")
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        _refuse("invalid_amount", f"{field}: {type(value).__name__} is not a decimal number.", field,
                "Not a decimal number.")
    if len(text) > 64 or not AMOUNT_PATTERN.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        _refuse("invalid_amount", f"{field}: {shown!r} is not a decimal number (digits, optionally a point "
                f"and more digits).", field, "Not a decimal number: use digits and a point, e.g. 1234.50.")
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(whole.lstrip("0")) > integer_digits:
        _refuse("amount_too_large", f"{field} is too large.", field,
                f"At most {integer_digits} digits before the decimal point.")
    if len(fraction.rstrip("0")) > places:
        _refuse("amount_too_precise", f"{field} has more than {places} decimal places.", field,
                f"At most {places} decimal places.")
    amount = Decimal(text)
    if positive and amount <= 0:
        _refuse("amount_not_positive", f"{field} must be greater than zero.", field, "Must be greater than zero.")
    return amount.quantize(Decimal(1).scaleb(-max(places, LEDGER_PLACES)))


def round_minor(amount: Decimal, currency: str, rounding=ROUND_HALF_UP) -> Decimal:
    """Round to the currency's minor unit; half-up unless a rule says otherwise."""
    return amount.quantize(minor_quantum(currency), rounding=rounding)


def format_amount(amount, currency: str | None, *, code: bool = True, grouping: bool = True) -> str:
    """An amount as a person reads it: in the currency's units, "4.03 USD" (not "4.032258 USD").

    The one display rule, used by every screen, document, message and export meant for people
    (templates: ``{{ amount|money:currency }}`` gives "4.03", ``{{ amount|money_code:currency }}``
    "4.03 USD"): rounded to the currency's minor unit half-up (ROUND_HALF_UP, the rule invoices
    state, see `round_minor`), thousands grouped with "," unless ``grouping=False`` (CSV), the ISO
    code after the number unless ``code=False``. An unknown or missing currency shows 2 decimals and
    no code. The precise amount stays in the ledger and the API. None or "" gives "".
    """
    if amount is None or amount == "":
        return ""
    if not isinstance(amount, Decimal):
        if isinstance(amount, float):
            amount = Decimal(repr(amount))
        else:
            try:
                amount = Decimal(str(amount).strip())
            except (InvalidOperation, ValueError):
                return str(amount)
    if not amount.is_finite():
        return str(amount)
    known = currency in CURRENCIES
    places = CURRENCIES[currency] if known else 2
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0.00"
    text = f"{rounded:,.{places}f}" if grouping else f"{rounded:.{places}f}"
    return f"{text} {currency}" if code and known else text


def format_money(amount: Decimal, currency: str) -> str:
    """The same as `format_amount` (kept for callers of the older name)."""
    return format_amount(amount, currency)
