"""One notation per identifier, before uniqueness is checked (no ORM: services and the data
migration call it).

- phone number: E.164 (`+15550199001`), parsed with `phonenumbers`; a number written
  without its country code (`555-0199-001`, `(555) 0199 002`) is read in the country of
  the default country calling code (setting `TARIFA_DEFAULT_COUNTRY_CODE`, e.g. `1`), and
  refused when none is set; `00…` is read as `+…`;
- MAC address: six lower-case hex pairs joined by colons (`aa:bb:cc:00:11:22`), from any of
  `AA-BB-CC-00-11-22`, `aabb.cc00.1122`, `AABBCC001122`;
- SIM ICCID and IMSI: digits only (spaces and dashes dropped);
- IP address: the address's canonical text (`2001:db8::1`);
- login and smart card: as given, without surrounding spaces.

A value that cannot be read raises `BadIdentifier` (a ValueError) with a sentence for the
operator.
"""

import ipaddress
import re


class BadIdentifier(ValueError):
    pass


def _phone(value: str, country_code: str) -> str:
    import phonenumbers  # a dependency (pyproject); imported where phone numbers are read

    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    region = None
    if not text.startswith("+"):
        if not country_code:
            raise BadIdentifier("Give the number with its country code, e.g. +15550199001.")
        region = phonenumbers.region_code_for_country_code(int(country_code))
        if region == "ZZ":
            raise BadIdentifier(f"The default country calling code {country_code} is unknown.")
    if re.search(r"[A-Za-z]", text):
        raise BadIdentifier("A phone number has digits only (and + ( ) - . spaces).")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as err:
        raise BadIdentifier(f"Not a phone number: {err}.") from None
    if not phonenumbers.is_possible_number(number):
        raise BadIdentifier("Not a possible phone number (too short or too long for its country).")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _mac(value: str) -> str:
    hexdigits = re.sub(r"[\s:.\-]", "", value).lower()
    if not re.fullmatch(r"[0-9a-f]{12}", hexdigits):
        raise BadIdentifier("A MAC address has 12 hex digits, e.g. aa:bb:cc:00:11:22.")
    return ":".join(hexdigits[i:i + 2] for i in range(0, 12, 2))


def _digits(value: str, what: str) -> str:
    digits = re.sub(r"[\s\-]", "", value)
    if not digits.isdigit():
        raise BadIdentifier(f"{what} has digits only.")
    return digits


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise BadIdentifier("Not an IP address.") from None


def normalise(kind: str, value, *, country_code: str = "") -> str:
    """`value` of identifier `kind` in its one notation ("" stays ""); BadIdentifier if unreadable."""
    text = str(value or "").strip()
    if not text:
        return ""
    if kind == "phone_number":
        return _phone(text, str(country_code or "").strip().lstrip("+"))
    if kind == "mac_address":
        return _mac(text)
    if kind == "iccid":
        return _digits(text, "An ICCID")
    if kind == "imsi":
        return _digits(text, "An IMSI")
    if kind == "ip_address":
        return _ip(text)
    return text
