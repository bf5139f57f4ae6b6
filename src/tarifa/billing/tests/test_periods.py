"""Periods: one parser (tarifa.kernel.periods) with a sane range, in the API, the UI and the services."""

import pytest

from tarifa.kernel.errors import ValidationFailed
from tarifa.kernel.periods import parse_period

from .. import services
from ..models import BillRun

BAD = ["9999-12", "0267-12", "2026-13", "2026-00", "2026-1", "26-10", "２０２６-１０", "2026-10-01", " ", "x" * 100]


@pytest.mark.parametrize("raw", BAD + [None, 202610])
def test_the_period_parser_refuses_by_name(raw):
    with pytest.raises(ValidationFailed) as err:
        parse_period(raw)
    assert err.value.code == "invalid_period" and list(err.value.fields) == ["period"]


def test_the_period_parser_takes_months_of_the_supported_years():
    assert parse_period(" 2026-10 ") == "2026-10"
    assert services.parse_period("2099-12") == "2099-12"


@pytest.fixture
def admin_api(make_user, api):
    client = api(make_user(username="admin", superuser=True, password=None))
    client.raise_request_exception = False
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["9999-12", "0267-12"])
def test_bad_periods_are_400_in_the_api_and_the_check(admin_api, raw):
    """9999-12 answered 500 (the period would end in the year 10000); 0267-12 was accepted."""
    run = admin_api.post("/api/v1/bill-runs/", {"period": raw}, format="json")
    check = admin_api.get("/api/v1/billing/check/", {"period": raw})

    for response in (run, check):
        assert response.status_code == 400, response.content[:300]
        assert "period" in response.json()["error"]["fields"]
    assert not BillRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("raw", ["9999-12", "0267-12"])
def test_bad_periods_are_field_errors_on_the_screens(make_user, client, raw):
    client.force_login(make_user(username="admin", superuser=True, password=None))
    client.raise_request_exception = False

    check = client.get("/billing/check/", {"period": raw})
    run = client.post("/billing/billrun/add/", {"period": raw})

    assert check.status_code == 200 and check.context["form"].errors["period"]
    assert run.status_code == 200 and run.context["form"].errors["period"]
    assert not BillRun.objects.exists()
