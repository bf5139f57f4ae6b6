"""Every registered list and detail page reads like a document, not a field dump (issue 10).

Computed from the registry like the permission suite: each screen's list and the detail of its
first demo record are opened as a superuser, and the text a person sees (not attributes, not
scripts) must hold no Python dict or list ("{'", "['"), no True/False/None, no UUID (a linked
record shows its number or name), and no amount with more decimals than a currency has
(the precise figures stay in titles and the API).
"""

import re
from html.parser import HTMLParser

import pytest
from django.db import transaction

import tarifa.urls  # noqa: F401  (registers every app's screens)
from tarifa.web import registry

UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
LONG_DECIMAL = re.compile(r"(?<![\d.])-?\d[\d,]*\.\d{5,}\b")
WORDS = re.compile(r"(?<![\w-])(True|False|None)(?![\w.-]| \()")  # "None." / "None (…)" are words


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "textarea", "option", "select"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "textarea", "option", "select"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def problems(text: str) -> list[str]:
    found = []
    if "{'" in text or "{\"" in text:
        found.append("a Python dict")
    if "['" in text:
        found.append("a Python list")
    if m := WORDS.search(text):
        found.append(f"the word {m.group(1)!r}: …{text[max(0, m.start() - 60):m.end() + 20]}…")
    if m := UUID.search(text):
        found.append(f"a UUID: …{text[max(0, m.start() - 60):m.end()]}…")
    if m := LONG_DECIMAL.search(text):
        found.append(f"an amount in machine units: …{text[max(0, m.start() - 60):m.end() + 10]}…")
    return found


# Lists whose text may hold a UUID that is not ours: the card provider's own transaction reference
# (the built-in test provider makes them UUIDs), shown as the payment's external reference and memo.
EXTERNAL_UUIDS = {"ledger:transfer_list", "payments:payment_list", "payments:cardcheckout_list",
                  "payments:cardcheckout_detail", "payments:payment_detail"}

SCREENS = sorted(registry.all_screens(), key=lambda s: s.url_name("list"))


@pytest.fixture(scope="module")
def demo_client(django_db_setup, django_db_blocker):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tarifa.web.demo_loader import load_demo

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            load_demo(actor="demo")
            user = get_user_model().objects.create(username="reader", is_superuser=True)
            client = Client()
            client.force_login(user)
            yield client
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def _sample(screens):
    found = screens.sample("detail") if screens.sample is not None else None
    return found if found is not None else screens.model._default_manager.order_by("pk").first()


@pytest.mark.parametrize("screens", SCREENS, ids=[s.url_name("detail") for s in SCREENS])
def test_detail_page_reads_like_a_document(demo_client, db, screens):
    obj = _sample(screens)
    assert obj is not None, f"demo data has no {screens.model._meta.label}"
    response = demo_client.get(screens.url("detail", obj))
    assert response.status_code == 200
    found = problems(visible_text(response.content.decode()))
    if screens.url_name("detail") in EXTERNAL_UUIDS:
        found = [p for p in found if not p.startswith("a UUID")]
    assert found == []


@pytest.mark.parametrize("screens", SCREENS, ids=[s.url_name("list") for s in SCREENS])
def test_list_page_reads_like_a_document(demo_client, db, screens):
    response = demo_client.get(screens.url("list"))
    assert response.status_code == 200
    found = problems(visible_text(response.content.decode()))
    if screens.url_name("list") in EXTERNAL_UUIDS:
        found = [p for p in found if not p.startswith("a UUID")]
    assert found == []
