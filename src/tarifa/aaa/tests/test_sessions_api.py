"""The sessions list: ?active= is true or false; anything else is a 400 naming it."""

import pytest

pytestmark = pytest.mark.django_db


def test_active_takes_true_or_false_only(api, make_user):
    client = api(make_user("aaa.view_session", password=None))
    assert client.get("/api/v1/aaa/sessions/").status_code == 200
    assert client.get("/api/v1/aaa/sessions/?active=false").status_code == 200
    r = client.get("/api/v1/aaa/sessions/?active=maybe")
    assert r.status_code == 400 and "active" in r.json()["error"]["fields"]
