"""The portal's flows through its pages and services: sign-in (rate limits, TOTP, separate
sessions), self-registration and password reset with one-time codes, paying, tariff change,
pause, profile, the staff's read-only view — each leaving an audit record naming the portal user."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from tarifa.audit.models import AuditEvent
from tarifa.catalog.models import Tariff
from tarifa.crm.models import Customer
from tarifa.integrations.models import Notification
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import DomainError
from tarifa.portal import auth, services, totp
from tarifa.portal.models import Attempt, PortalUser
from tarifa.subscriptions.models import Subscription
from tarifa.testing.demo import demo_loaded

from .helpers import portal_api, portal_client

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    with demo_loaded(django_db_blocker):
        yield


@pytest.fixture
def maria(demo, db):
    return PortalUser.objects.get(login="maria.garcia@example.com")


def _csrf_client():
    from django.test import Client

    return Client()


def test_login_page_signs_in_to_the_portal_only(maria, client):
    answer = client.post(reverse("portal:login"), {"login": "Maria.Garcia@example.com", "password": "Maria-portal-2026"})
    assert answer.status_code == 302 and answer["Location"] == reverse("portal:home")
    assert auth.COOKIE in answer.cookies and answer.cookies[auth.COOKIE]["httponly"]
    assert "sessionid" not in answer.cookies  # no staff session
    assert client.get(reverse("portal:home")).status_code == 200
    assert client.get("/crm/customer/").status_code == 302  # the staff screens still want a staff login
    login = AuditEvent.objects.filter(object_id=str(maria.pk), action="login").first()
    assert login.actor_label == "portal:maria.garcia@example.com" and login.channel == "portal"
    assert login.actor is None


def test_wrong_login_and_wrong_password_read_the_same(maria, client):
    one = client.post(reverse("portal:login"), {"login": "maria.garcia@example.com", "password": "nope nope"})
    two = client.post(reverse("portal:login"), {"login": "nobody@example.com", "password": "nope nope"})
    assert one.status_code == two.status_code == 200
    strip = lambda html: re.sub(r'value="[^"]*"', "", html.decode())  # noqa: E731
    assert strip(one.content) == strip(two.content)


def test_lockout_per_login_refuses_even_the_right_password(maria):
    for _ in range(5):
        with pytest.raises(services.InvalidLogin):
            services.authenticate(login=maria.login, password="wrong", ip="10.1.1.1")
    with pytest.raises(DomainError) as refused:
        services.authenticate(login=maria.login, password="Maria-portal-2026", ip="10.9.9.9")
    assert refused.value.status == 429 and refused.value.retry_after
    for _ in range(5):
        with pytest.raises(services.InvalidLogin):
            services.authenticate(login="ghost@example.com", password="wrong", ip="10.2.2.2")
    with pytest.raises(DomainError) as unknown:
        services.authenticate(login="ghost@example.com", password="wrong", ip="10.2.2.2")
    assert unknown.value.status == 429 and unknown.value.message == refused.value.message


def test_lockout_per_address(maria):
    for i in range(20):
        with pytest.raises(services.InvalidLogin):
            services.authenticate(login=f"guess{i}@example.com", password="wrong", ip="10.3.3.3")
    with pytest.raises(DomainError) as refused:
        services.authenticate(login=maria.login, password="Maria-portal-2026", ip="10.3.3.3")
    assert refused.value.status == 429
    assert services.authenticate(login=maria.login, password="Maria-portal-2026", ip="10.4.4.4") == maria


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(rf, settings):
    from tarifa.web.middleware import client_ip

    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.9", REMOTE_ADDR="127.0.0.1")
    assert client_ip(request) == "127.0.0.1"
    settings.TARIFA_TRUSTED_PROXIES = ["127.0.0.1"]
    assert client_ip(request) == "203.0.113.9"
    spoofed = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9", REMOTE_ADDR="127.0.0.1")
    assert client_ip(spoofed) == "203.0.113.9"  # the address the proxy saw, not what the client wrote
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4", REMOTE_ADDR="10.0.0.5")) == "10.0.0.5"


def test_totp_set_up_and_sign_in(maria):
    secret = services.start_totp(maria, actor=maria)
    maria.refresh_from_db()
    assert maria.totp_secret == secret and not maria.totp_enabled
    from django.db import connection

    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute("SELECT totp_secret FROM portal_portaluser WHERE id = %s", [maria.pk])
        assert secret not in cursor.fetchone()[0]
    at = now().timestamp()
    services.confirm_totp(maria, actor=maria, code=totp.totp(secret, at - 30))
    with pytest.raises(services.OtpRequired):
        services.authenticate(login=maria.login, password="Maria-portal-2026", ip="10.5.5.5")
    assert services.authenticate(login=maria.login, password="Maria-portal-2026", otp=totp.totp(secret, at),
                                 ip="10.5.5.5") == maria
    with pytest.raises(services.InvalidLogin):  # the same code twice: refused
        services.authenticate(login=maria.login, password="Maria-portal-2026", otp=totp.totp(secret, at), ip="10.5.5.5")
    assert AuditEvent.objects.filter(object_id=str(maria.pk), action="totp_enabled").exists()
    assert secret not in str(list(AuditEvent.objects.filter(object_id=str(maria.pk)).values_list("changes", flat=True)))


def _code_sent_to(recipient) -> str:
    note = Notification.objects.filter(recipient=recipient, event="portal_code").order_by("-created_at").first()
    return re.search(r"\b(\d{6})\b", note.body).group(1)


def test_self_registration_with_a_one_time_code(demo, db):
    john = Customer.objects.get(first_name="John", last_name="Smith")
    # A wrong pairing says the same and sends nothing.
    services.request_registration(customer_number=john.number, contact="someone@else.example", ip="10.6.6.6")
    assert not Notification.objects.filter(event="portal_code").exists()
    services.request_registration(customer_number=john.number, contact="JOHN.smith@example.com", ip="10.6.6.6")
    code = _code_sent_to("john.smith@example.com")
    with pytest.raises(DomainError):
        services.complete_registration(contact="john.smith@example.com", code="000000" if code != "000000" else "111111",
                                       password="John-portal-2026", ip="10.6.6.6")
    user = services.complete_registration(contact="john.smith@example.com", code=code, password="John-portal-2026",
                                          ip="10.6.6.6")
    assert user.customer == john and user.login == "john.smith@example.com"
    with pytest.raises(DomainError):  # a code works once
        services.complete_registration(contact="john.smith@example.com", code=code, password="John-portal-2026")


def test_code_sending_and_guessing_are_limited(demo, db):
    aiko = Customer.objects.get(first_name="Aiko")
    for _ in range(3):
        services.request_registration(customer_number=aiko.number, contact="aiko.tanaka@example.org", ip="10.7.7.7")
    with pytest.raises(DomainError) as refused:
        services.request_registration(customer_number=aiko.number, contact="aiko.tanaka@example.org", ip="10.7.7.8")
    assert refused.value.status == 429
    for _ in range(5):
        with pytest.raises(DomainError):
            services.complete_registration(contact="aiko.tanaka@example.org", code="123456", password="Aiko-portal-2026",
                                           ip="10.7.7.9")
    code = _code_sent_to("aiko.tanaka@example.org")
    with pytest.raises(DomainError) as locked:  # even the right code, once locked
        services.complete_registration(contact="aiko.tanaka@example.org", code=code, password="Aiko-portal-2026",
                                       ip="10.7.7.10")
    assert locked.value.status == 429
    assert Attempt.objects.filter(kind="code", succeeded=False).count() >= 6


def test_password_reset_ends_other_sessions(maria):
    old = portal_client(maria)
    assert old.get(reverse("portal:home")).status_code == 200
    services.request_password_reset(login="maria.garcia@example.com", ip="10.8.8.8")
    services.request_password_reset(login="nobody@example.com", ip="10.8.8.8")  # no error, nothing sent
    code = _code_sent_to("maria.garcia@example.com")
    services.complete_password_reset(login="maria.garcia@example.com", code=code, password="Maria-new-pass-2026")
    assert old.get(reverse("portal:home")).status_code == 302
    assert services.authenticate(login=maria.login, password="Maria-new-pass-2026", ip="10.8.8.9") == maria


def test_voucher_and_promised_payment(maria):
    from tarifa.payments import services as payments

    account = maria.customer.billing_accounts.filter(currency="USD").first()
    batch, cards = payments.generate_batch(actor="test", count=1, nominal="15.00", currency="USD",
                                           expires_on=today() + dt.timedelta(days=30))
    payments.sell_batch(batch, actor="test", paid_via="bank")
    client = portal_client(maria)
    answer = client.post(reverse("portal:pay"), {"what": "voucher", "account": str(account.pk), "code": "1111222233334444"})
    assert answer.status_code == 200 and "cannot be used" in answer.content.decode()
    before = account.balance
    answer = client.post(reverse("portal:pay"), {"what": "voucher", "account": str(account.pk), "code": cards[0][1]})
    assert answer.status_code == 302
    account.refresh_from_db()
    account.ledger_account.refresh_from_db()
    assert account.balance == before + 15
    assert account.payments.filter(channel="voucher", external_reference=cards[0][0]).exists()
    assert AuditEvent.objects.filter(actor_label="portal:maria.garcia@example.com", channel="portal").exists()


def test_tariff_change_shows_the_price_then_changes(maria):
    sub = Subscription.objects.get(billing_account__customer=maria.customer, tariff__code="NET-100")
    new = Tariff.objects.get(code="NET-500")
    client = portal_client(maria)
    page = client.get(reverse("portal:tariff_change", kwargs={"subscription_id": sub.pk}), {"tariff": str(new.pk)})
    assert page.status_code == 200 and "Rest of this month" in page.content.decode()
    answer = client.post(reverse("portal:tariff_change", kwargs={"subscription_id": sub.pk}), {"tariff": str(new.pk)})
    assert answer.status_code == 302
    sub.refresh_from_db()
    assert sub.tariff == new
    event = AuditEvent.objects.filter(object_id=str(sub.pk), action="change_tariff").first()
    assert event.actor_label == "portal:maria.garcia@example.com" and event.channel == "portal"
    # A tariff not on the operator's list is refused.
    tv = Tariff.objects.get(code="TV-BASIC")
    answer = client.post(reverse("portal:tariff_change", kwargs={"subscription_id": sub.pk}), {"tariff": str(tv.pk)})
    assert answer.status_code == 200
    sub.refresh_from_db()
    assert sub.tariff == new


def test_tariff_change_through_the_api(maria):
    sub = Subscription.objects.get(billing_account__customer=maria.customer, tariff__code="NET-100")
    client = portal_api(maria)
    url = reverse("portal_api:change_tariff", kwargs={"subscription_id": sub.pk})
    quote = client.post(url, {"tariff": "NET-500"}, format="json").json()
    assert quote["changed"] is False and quote["quote"]["tariff"] == "NET-500"
    assert client.post(url, {"tariff": "NET-500", "confirm": True}, format="json").json()["changed"] is True


def test_pause_within_the_operators_limits(maria):
    sub = Subscription.objects.get(billing_account__customer=maria.customer, tariff__code="NET-100")
    client = portal_client(maria)
    url = reverse("portal:pause", kwargs={"subscription_id": sub.pk})
    too_long = client.post(url, {"until": (today() + dt.timedelta(days=400)).isoformat()})
    assert too_long.status_code == 200
    answer = client.post(url, {"until": (today() + dt.timedelta(days=7)).isoformat()})
    assert answer.status_code == 302
    sub.refresh_from_db()
    assert sub.status == "suspended"
    assert services.paused_days_this_year(sub) >= 0
    client.post(reverse("portal:resume", kwargs={"subscription_id": sub.pk}))
    sub.refresh_from_db()
    assert sub.status == "active"


def test_roles_and_departments(demo, db):
    noc = PortalUser.objects.get(login="noc@acme-logistics.example")
    accounts = PortalUser.objects.get(login="accounts@acme-logistics.example")
    client = portal_client(noc)
    assert client.get(reverse("portal:invoices")).status_code == 404  # technical: no money documents
    assert client.get(reverse("portal:services")).status_code == 200
    from tarifa.portal.scope import Scope

    assert set(Scope(noc).subscriptions()) == set(noc.departments.get().subscriptions.all())
    assert Scope(accounts).subscriptions().count() >= Scope(noc).subscriptions().count()
    assert portal_client(accounts).get(reverse("portal:services")).status_code == 404


def test_staff_see_what_the_customer_sees_read_only(maria, staff_client, make_user):
    staff = make_user("portal.view_as_customer", "crm.view_customer")
    client = staff_client(staff)
    answer = client.post(reverse("portal:view_as", kwargs={"customer_id": maria.customer_id}))
    assert answer.status_code == 302
    home = client.get(reverse("portal:home"))
    assert home.status_code == 200 and "Read-only view" in home.content.decode()
    assert client.post(reverse("portal:pay"), {"what": "promise", "account": "x"}).status_code == 403
    event = AuditEvent.objects.filter(object_id=str(maria.customer_id), action="portal_viewed_as_customer").first()
    assert event.actor == staff
    other = make_user("crm.view_customer")
    assert staff_client(other).post(reverse("portal:view_as", kwargs={"customer_id": maria.customer_id})).status_code == 403


def test_staff_api_creates_a_portal_login(demo, db, api, make_user):
    staff = make_user("portal.add_portaluser", "portal.view_portaluser", password=None)
    aiko = Customer.objects.get(first_name="Aiko")
    answer = api(staff).post("/api/v1/portal-users/", {"customer": aiko.number, "login": "Aiko@Example.org",
                                                       "password": "Aiko-portal-2026"}, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["login"] == "aiko@example.org" and "password" not in answer.json()
    again = api(staff).post("/api/v1/portal-users/", {"customer": str(aiko.pk), "login": "aiko@example.org",
                                                      "password": "Aiko-portal-2026"}, format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "login_taken"


def test_russian_pages_and_amounts(maria):
    client = portal_client(maria)
    client.post(reverse("portal:language"), {"language": "ru", "next": "/portal/"})
    page = client.get(reverse("portal:home")).content.decode()
    assert "Мои услуги" in page
    maria.refresh_from_db()
    assert maria.language == "ru"


def test_api_token_me_and_wrong_password(maria):
    from rest_framework.test import APIClient

    client = APIClient()
    wrong = client.post("/api/portal/v1/auth/token/", {"login": maria.login, "password": "nope"}, format="json")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_login"
    answer = client.post("/api/portal/v1/auth/token/", {"login": maria.login, "password": "Maria-portal-2026"},
                         format="json")
    assert answer.status_code == 200 and answer.json()["token"].startswith("tpp_")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {answer.json()['token']}")
    assert client.get("/api/portal/v1/me/").json()["customer_number"] == maria.customer.number
    assert client.get("/api/portal/v1/accounts/").status_code == 200
    assert client.get("/api/portal/v1/schema/").status_code == 200


def test_api_lists_are_paged_like_the_staff_api(maria):
    client = portal_api(maria)
    subs = list(Subscription.objects.filter(billing_account__customer=maria.customer).order_by("number")
                .values_list("number", flat=True))
    assert len(subs) >= 3  # internet, mobile, TV
    first = client.get("/api/portal/v1/subscriptions/?limit=2").json()
    assert first["count"] == len(subs) and [r["number"] for r in first["results"]] == subs[:2]
    assert "offset=2" in first["next"] and first["previous"] is None
    rest = client.get("/api/portal/v1/subscriptions/?limit=2&offset=2").json()
    assert [r["number"] for r in rest["results"]] == subs[2:4]
    for url in ("/api/portal/v1/invoices/", "/api/portal/v1/payments/", "/api/portal/v1/tickets/"):
        page = client.get(url + "?page_size=1").json()
        assert set(page) >= {"count", "next", "previous", "results"} and len(page["results"]) <= 1, url
    bad = client.get("/api/portal/v1/payments/?limit=0")
    assert bad.status_code == 400 and "limit" in bad.json()["error"]["fields"]
    assert client.get("/api/portal/v1/payments/?page_size=5000").status_code == 400


def test_the_payments_page_pages_and_keeps_its_filters(maria, monkeypatch):
    from tarifa.payments.models import Payment
    from tarifa.portal import views

    monkeypatch.setattr(views, "PER_PAGE", 1)
    mine = Payment.objects.filter(billing_account__customer=maria.customer).count()
    assert mine >= 2
    client = portal_client(maria)
    first = client.get("/portal/payments/?sort=-amount").content.decode()
    assert 'data-testid="pager"' in first and "sort=-amount&amp;page=2" in first
    last = client.get(f"/portal/payments/?sort=-amount&page={mine}").content.decode()
    assert 'rel="prev"' in last and 'rel="next"' not in last
    assert last.count("/receipt") == 1
