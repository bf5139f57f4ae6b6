"""Cross-branch reads on one database: the owner's query answers (search, card), the signed query endpoint
with the stream endpoint's checks, the asker's fan-out with its timeout (a peer that takes the connection
and never answers), and the stale card when the owner is unreachable."""

import json
import socket
import time
from contextlib import contextmanager

import pytest
from django.test import override_settings

from tarifa.federation import queries, services as federation, signatures
from tarifa.interbranch import selectors, services
from tarifa.interbranch.models import SubscriberCard
from tarifa.interbranch.queries import card_local, search_local
from tarifa.kernel.errors import DomainError
from tarifa.ledger.tests import factories

pytestmark = pytest.mark.django_db


@contextmanager
def as_node(code):
    with override_settings(TARIFA_NODE_CODE=code, TARIFA_NODE_ROLE="branch"):
        yield


@pytest.fixture
def hanging_port():
    """A port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def subscriber():
    from tarifa.subscriptions import services as subs
    from tarifa.subscriptions.tests.helpers import make_catalog

    tariffs = make_catalog()
    acc = factories.account(currency="EUR")
    sub = subs.create_subscription(actor="test", billing_account=acc, tariff=tariffs["NET-31"], login="olga.k",
                                   activate=False)
    return acc, sub


def test_the_owner_finds_its_subscriber_by_exact_numbers_and_login_and_answers_the_card():
    acc, sub = subscriber()
    for q in (acc.customer.number, acc.number, sub.number, "olga.k", "OLGA.K"):
        (found,) = search_local(q)
        assert found["customer"] == acc.customer.number and found["accounts"] == [acc.number], q
    assert search_local("olga") == []  # exact only
    card = card_local(acc.number)
    assert card["customer"]["number"] == acc.customer.number
    assert card["accounts"] == [{"number": acc.number, "currency": "EUR", "status": "active",
                                 "payment_mode": "prepaid", "balance": "0.000000"}]
    assert [(s["number"], s["login"], s["status"]) for s in card["subscriptions"]] == [(sub.number, "olga.k",
                                                                                       sub.status)]
    with pytest.raises(DomainError) as missing:
        card_local("HQ-A9999999")
    assert missing.value.code == "subscriber_not_found"


def signed(client, path, params, key, key_id):
    raw = json.dumps(params).encode()
    headers = signatures.sign_request(method="POST", path=path, body=raw, key_id=key_id, private_key=key)
    return client.post(path, data=raw, content_type="application/json", headers=headers)


def test_the_query_endpoint_answers_a_registered_node_only(client):
    acc, _sub = subscriber()
    key = signatures.generate_private_key()
    with as_node("HQ"):
        node = federation.create_node(actor="test", code="B2", name="Branch 2", base_url="http://127.0.0.1:9")
        federation.add_node_key(node, actor="test", key_id="B2.k1", public_key=signatures.public_to_text(key.public_key()))
        path = "/federation/v1/query/interbranch.card"
        ok = signed(client, path, {"number": acc.number}, key, "B2.k1")
        assert ok.status_code == 200, ok.content
        assert ok.json()["result"]["accounts"][0]["number"] == acc.number
        missing = signed(client, path, {"number": "HQ-A9999999"}, key, "B2.k1")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "subscriber_not_found"
        bad = signed(client, path, {}, key, "B2.k1")
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_query"
        unknown = signed(client, "/federation/v1/query/nothing.here", {}, key, "B2.k1")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_query"
        stranger = signed(client, path, {"number": acc.number}, signatures.generate_private_key(), "B2.k1")
        assert stranger.status_code == 401
        unsigned = client.post(path, data=b"{}", content_type="application/json")
        assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "unsigned"
        federation.archive_node(node, actor="test")
        assert signed(client, path, {"number": acc.number}, key, "B2.k1").status_code == 401
    with override_settings(TARIFA_NODE_ROLE="standalone"):
        assert signed(client, path, {"number": acc.number}, key, "B2.k1").status_code == 404


def test_the_fan_out_asks_branches_concurrently_and_gives_up_after_the_timeout(hanging_port):
    with as_node("B2"):
        for code in ("A1", "A2", "A3"):
            federation.create_node(actor="test", code=code, name=code, base_url=f"http://127.0.0.1:{hanging_port}")
        started = time.monotonic()
        found = selectors.search_federation("+15550001", timeout=1.0)
        took = time.monotonic() - started
    assert set(found["unreachable"]) == {"A1", "A2", "A3"} and found["results"] == []
    assert took < 2.5, took  # three hanging branches, one second each, asked at the same time


def test_an_unreachable_owner_shows_the_last_known_card_marked_stale_and_what_is_pending_here():
    with as_node("B2"):
        federation.create_node(actor="test", code="HQ", name="HQ", base_url="http://127.0.0.1:9")  # refused
        card = {"customer": {"number": "HQ-C0000042", "name": "Olga K"},
                "accounts": [{"number": "HQ-A0000042", "currency": "USD", "status": "active", "balance": "3.000000",
                              "payment_mode": "prepaid"}],
                "subscriptions": [], "as_of": "2026-12-01T10:00:00+00:00"}
        services.remember_card(branch="HQ", card=card, asked="HQ-A0000042")
        assert set(SubscriberCard.objects.values_list("number", flat=True)) == {"HQ-C0000042", "HQ-A0000042"}
        fp = services.take_foreign_payment(actor="test", account="HQ-A0000042", amount="5.00", channel="cash",
                                           currency="USD", idempotency_key="k1")
        view = selectors.foreign_card("HQ", "hq-c0000042", timeout=1.0)
    assert view["live"] is False and view["card"] == card and view["fetched_at"]
    assert "no answer" in view["error"]
    assert [p["number"] for p in view["pending"]] == [fp.number]
    with as_node("B2"):
        never = selectors.foreign_card("HQ", "HQ-A0000077", timeout=1.0)
    assert never["card"] is None and never["live"] is False and not never["not_found"]


def test_the_search_page_and_the_card_api_need_their_permission(make_user, staff_client, api):
    acc, _sub = subscriber()
    viewer = make_user("interbranch.view_subscribercard")
    page = staff_client(viewer).get("/interbranch/search/", {"q": acc.number})
    assert page.status_code == 200 and acc.customer.number in page.content.decode()
    answer = api(viewer).get(f"/api/v1/federation/subscribers/HQ/{acc.number}/")
    assert answer.status_code == 200 and answer.json()["live"] is True
    assert answer.json()["card"]["accounts"][0]["number"] == acc.number
    assert api(viewer).get("/api/v1/federation/subscribers/HQ/HQ-A9999999/").status_code == 404
    other = make_user("interbranch.view_foreignpayment")
    assert api(other).get("/api/v1/federation/search/", {"q": acc.number}).status_code == 403
    assert queries.get("interbranch.search") is not None


def test_the_card_page_shows_a_live_card_and_a_stale_one(make_user, staff_client):
    acc, sub = subscriber()
    web = staff_client(make_user("interbranch.view_subscribercard", "interbranch.add_foreignpayment"))
    live = web.get(f"/interbranch/card/HQ/{acc.number}/")
    assert live.status_code == 200 and sub.number in live.content.decode() and "Live from branch HQ" in live.content.decode()
    assert web.get("/interbranch/card/HQ/HQ-A9999999/").status_code == 404
    with as_node("B2"):
        federation.create_node(actor="test", code="A1", name="A1", base_url="http://127.0.0.1:9")
        services.remember_card(branch="A1", card=card_local(acc.number) | {"as_of": "x"}, asked="A1-A0000001")
        stale = web.get("/interbranch/card/A1/A1-A0000001/").content.decode()
    assert "stale since" in stale and acc.number in stale and "Take a payment" in stale
