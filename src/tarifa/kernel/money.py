"""Money is never a float (rule 3).

Amounts are `Decimal`; the ledger keeps 6 decimal places; every amount carries an
ISO 4217 currency; documents round to the currency's minor unit with a stated rule.
"""

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


def parse_amount(value, *, field: str = "amount", positive: bool = False, places: int = LEDGER_PLACES) -> Decimal:
    """Parse an amount given as a decimal string or Decimal, never a float.

    Refuses floats, malformed numbers, non-finite values and more than `places`
    fractional digits, naming `field` in the error.
    """
    if isinstance(value, float) or isinstance(value, bool):
        raise ValidationFailed(f"{field} must be a decimal string, not a float.", code="invalid_amount",
                               fields={field: ["Give the amount as a decimal string, e.g. \"10.00\"."]})
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field}: {value!r} is not a decimal number.", code="invalid_amount",
                               fields={field: ["Not a decimal number."]}) from None
    if not amount.is_finite():
        raise ValidationFailed(f"{field} must be finite.", code="invalid_amount", fields={field: ["Not finite."]})
    if -amount.as_tuple().exponent > places and amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ValidationFailed(f"{field} has more than {places} decimal places.", code="amount_too_precise",
                               fields={field: [f"At most {places} decimal places."]})
    if positive and amount <= 0:
        raise ValidationFailed(f"{field} must be greater than zero.", code="amount_not_positive",
                               fields={field: ["Must be greater than zero."]})
    if abs(amount) >= Decimal(10) ** (MAX_DIGITS - LEDGER_PLACES):
        raise ValidationFailed(f"{field} is too large.", code="amount_too_large", fields={field: ["Too large."]})
    return amount.quantize(LEDGER_QUANTUM)


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
