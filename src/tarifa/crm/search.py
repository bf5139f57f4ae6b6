"""Search terms of a customer, and how a query is matched against them (no ORM).

`LIKE '%x%'` cannot use a btree index and PostgreSQL's pg_trgm is not available
everywhere (not in the embedded server), so customer search looks terms up by prefix
in an indexed table (`crm.SearchTerm`) that the services keep current: every word of
the names, every identifier whole and in parts, e-mails whole, by local part and by
domain, and phones as their digits reversed (so "the last digits" is a prefix too).
"""

import re

MAX_TERM = 100
PHONE_MARK = "#"  # phone terms: "#" + digits reversed; query words never start with it

_SPLIT = re.compile(r"[\s,;:()\"'<>\[\]{}!?*]+")
_PARTS = re.compile(r"[-./_@+]+")
_PHONE_QUERY = re.compile(r"\+?[\d\s().\-/]+")


def _words(text: str) -> list[str]:
    return [w for w in _SPLIT.split((text or "").lower()) if w]


def text_terms(text: str) -> set[str]:
    """Each word, and the parts of words joined by - . / _ @ +: "Garcia-Lopez" → garcia-lopez, garcia, lopez."""
    terms = set()
    for word in _words(text):
        terms.add(word)
        terms.update(p for p in _PARTS.split(word) if p)
    return terms


def identifier_terms(value: str) -> set[str]:
    """An identifier (number, tax id, document): as text terms, its digits alone, and the
    number without leading zeros ("HQ-C0077777" is found by "77777")."""
    terms = text_terms(value)
    digits = re.sub(r"\D", "", value or "")
    if digits:
        terms.add(digits)
        terms.add(digits.lstrip("0") or "0")
    return terms


def email_terms(value: str) -> set[str]:
    value = (value or "").lower()
    local, _, domain = value.rpartition("@")
    return {value, local, domain} | text_terms(local) - {""}


def phone_terms(value: str) -> set[str]:
    digits = re.sub(r"\D", "", value or "")
    return {PHONE_MARK + digits[::-1]} if digits else set()


def customer_terms(*, names=(), identifiers=(), emails=(), phones=()) -> set[str]:
    terms = set()
    for name in names:
        terms |= text_terms(name)
    for ident in identifiers:
        terms |= identifier_terms(ident)
    for email in emails:
        terms |= email_terms(email)
    for phone in phones:
        terms |= phone_terms(phone)
    return {t[:MAX_TERM] for t in terms if t}


def query_words(query: str) -> list[str]:
    """Every word must prefix one of a customer's terms."""
    return [w[:MAX_TERM] for w in _words(query) if not w.startswith(PHONE_MARK)]


def phone_prefix(query: str) -> str | None:
    """For a query that looks like a phone number (≥ 4 digits, phone punctuation only):
    the term prefix that finds phones ending with those digits."""
    query = (query or "").strip()
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4 and _PHONE_QUERY.fullmatch(query):
        return PHONE_MARK + digits[::-1]
    return None
