import pytest

from tarifa.inventory.models import Device, Move

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(api, admin_user):
    return api(admin_user)


def post(client, url, body, key):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_receive_move_history_and_409(client, stock):
    r = post(client, "/api/v1/inventory/receipts/", {"warehouse": "WH1", "item": "RT-1", "serials": ["A1", "A2"],
                                                      "unit_cost": "41.00"}, "k-receipt")
    assert r.status_code == 201, r.content
    assert [m["serial"] for m in r.json()] == ["A1", "A2"]
    again = post(client, "/api/v1/inventory/receipts/", {"warehouse": "WH1", "item": "RT-1", "serials": ["A1", "A2"],
                                                          "unit_cost": "41.00"}, "k-receipt")
    assert again.status_code == 201 and Device.objects.count() == 2  # a replay, not a second receipt
    dup = post(client, "/api/v1/inventory/receipts/", {"warehouse": "WH1", "item": "RT-1",
                                                        "serials": ["B1", "B1", "A2"]}, "k-dup")
    assert dup.status_code == 409
    error = dup.json()["error"]
    assert error["code"] == "serials_refused" and len(error["fields"]["serials"]) == 2
    moved = post(client, "/api/v1/inventory/moves/", {"serial": "A1", "from_location": "WH1",
                                                       "to_location": stock.van.code, "reason": "van"}, "k-move")
    assert moved.status_code == 201 and moved.json()[0]["kind"] == "issue"
    refused = post(client, "/api/v1/inventory/moves/", {"serial": "A1", "from_location": "WH1",
                                                         "to_location": stock.van.code}, "k-move-2")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "device_not_here"
    device = client.get("/api/v1/inventory/devices/", {"serial": "A1"}).json()["results"][0]
    assert device["location_code"] == stock.van.code
    assert [h["kind"] for h in device["history"]] == ["receipt", "issue"]


def test_batch_of_quantities_and_serials_all_or_nothing(client, stock):
    post(client, "/api/v1/inventory/receipts/", {"warehouse": "WH1", "item": "CBL", "quantity": "100"}, "r1")
    post(client, "/api/v1/inventory/receipts/", {"warehouse": "WH1", "item": "RT-1", "serials": ["S1"]}, "r2")
    batch = {"lines": [{"item": "CBL", "quantity": "30", "from_location": "WH1", "to_location": stock.van.code},
                       {"serial": "S1", "from_location": "WH1", "to_location": stock.van.code},
                       {"item": "CBL", "quantity": "80", "from_location": "WH1", "to_location": stock.van.code}],
             "reason": "morning load"}
    r = post(client, "/api/v1/inventory/moves/", batch, "b1")
    assert r.status_code == 409 and r.json()["error"]["code"] == "insufficient_stock"
    assert Move.objects.filter(kind="issue").count() == 0
    batch["lines"][2]["quantity"] = "70"
    r = post(client, "/api/v1/inventory/moves/", batch, "b2")
    assert r.status_code == 201 and len(r.json()) == 3
    loc = client.get(f"/api/v1/inventory/locations/{stock.warehouse.pk}/").json()
    assert loc["on_hand"] == [] or all(row["quantity"] != "0.000" for row in loc["on_hand"])


def test_reservations_stocktakes_and_check(client, stock):
    post(client, "/api/v1/inventory/receipts/", {"warehouse": "WH1", "item": "RT-1", "serials": ["Q1"]}, "r1")
    r = post(client, "/api/v1/inventory/reservations/", {"reference": "ticket:1", "serial": "Q1"}, "res1")
    assert r.status_code == 201, r.content
    r2 = post(client, "/api/v1/inventory/reservations/", {"reference": "ticket:2", "serial": "Q1"}, "res2")
    assert r2.status_code == 409
    released = client.post(f"/api/v1/inventory/reservations/{r.json()['id']}/release/", {}, format="json")
    assert released.json()["state"] == "released"
    take = post(client, "/api/v1/inventory/stocktakes/", {"location": "WH1", "reason": "count"}, "st1").json()
    client.post(f"/api/v1/inventory/stocktakes/{take['id']}/count/", {"item": "RT-1", "serials": []}, format="json")
    posted = client.post(f"/api/v1/inventory/stocktakes/{take['id']}/post/", {}, format="json")
    assert posted.json()["state"] == "posted"
    assert Device.objects.get(serial="Q1").location.kind == "adjustment"
    check = client.get("/api/v1/inventory/check/").json()
    assert check["ok"] and check["devices"] == 1
