"""A small operator for usage tests: a mobile tariff rated by a simple plan, a prepaid and a
postpaid subscriber, and helpers to write usage files.

Prices (tenant "tarifa", rating subject = the tariff code "MOB"):
- voice to prefix 1 (NAT): 0.10 per minute, whole minutes (R_MIN, *up 4);
- voice to prefix 44 (UK): 0.05 connect fee + 0.60 per minute by the second (R_UK);
- SMS: 0.05 each; data: 0.01 per MB (10^6 bytes), whole MBs.
"""

import datetime as dt
import io
from decimal import Decimal

from tarifa.catalog import services as catalog
from tarifa.crm import services as crm
from tarifa.ledger import services as ledger
from tarifa.subscriptions import services as subs

from .. import services
from ..engine import SECOND

ACTOR = "test"
UTC = dt.UTC
DAY = dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
HEADER = "record_id,source,subject,destination,type,start_time,usage\n"
_n = [0]


def make_plan(tenant_code="tarifa"):
    tenant = services.create_tenant(actor=ACTOR, code=tenant_code, name="Tarifa retail")
    nat = services.create_destination(actor=ACTOR, tenant=tenant, code="NAT", name="National", prefixes=["1"])
    uk = services.create_destination(actor=ACTOR, tenant=tenant, code="UK", name="United Kingdom", prefixes=["44"])
    r_min = services.create_rate(actor=ACTOR, tenant=tenant, code="R_MIN", slots=[
        {"connect_fee": "0", "price": "0.10", "rate_unit": 60 * SECOND, "rate_increment": 60 * SECOND}])
    r_uk = services.create_rate(actor=ACTOR, tenant=tenant, code="R_UK", slots=[
        {"connect_fee": "0.05", "price": "0.60", "rate_unit": "60s", "rate_increment": "1s"}])
    r_sms = services.create_rate(actor=ACTOR, tenant=tenant, code="R_SMS", slots=[
        {"price": "0.05", "rate_unit": 1, "rate_increment": 1}])
    r_mb = services.create_rate(actor=ACTOR, tenant=tenant, code="R_MB", slots=[
        {"price": "0.01", "rate_unit": 10**6, "rate_increment": 10**6}])
    dr = {}
    for code, dest, rate in (("DR_NAT", nat, r_min), ("DR_UK", uk, r_uk), ("DR_SMS", None, r_sms),
                             ("DR_DATA", None, r_mb)):
        dr[code] = services.create_destination_rate(actor=ACTOR, tenant=tenant, code=code, destination=dest, rate=rate,
                                                    rounding_method="*up", rounding_decimals=4)
    voice = services.create_rating_plan(actor=ACTOR, tenant=tenant, code="RP_VOICE", bindings=[
        {"destination_rate_code": "DR_NAT", "weight": 10}, {"destination_rate_code": "DR_UK", "weight": 10}])
    sms = services.create_rating_plan(actor=ACTOR, tenant=tenant, code="RP_SMS",
                                      bindings=[{"destination_rate_code": "DR_SMS"}])
    data = services.create_rating_plan(actor=ACTOR, tenant=tenant, code="RP_DATA",
                                       bindings=[{"destination_rate_code": "DR_DATA"}])
    since = dt.datetime(2024, 1, 1, tzinfo=UTC)
    for category, plan in (("call", voice), ("sms", sms), ("data", data)):
        services.create_rating_profile(actor=ACTOR, tenant=tenant, category=category, subject="MOB",
                                       activation_time=since, rating_plan=plan)
    return {"tenant": tenant, "dr": dr, "rates": {"R_MIN": r_min, "R_UK": r_uk}}


def make_catalog():
    st = catalog.create_service_type(actor=ACTOR, code="mobile", name="Mobile", category="mobile",
                                     identifier_kinds=["phone_number", "iccid", "imsi"])
    svc = catalog.create_service(actor=ACTOR, code="mobile", name="Mobile", service_type=st)
    mob = catalog.create_tariff(actor=ACTOR, code="MOB", name="Mobile", service=svc, currency="EUR", period="month",
                                recurring_fee="0", valid_from=dt.date(2024, 1, 1))
    bare = catalog.create_tariff(actor=ACTOR, code="BARE", name="Unrated", service=svc, currency="EUR",
                                 period="month", recurring_fee="0", valid_from=dt.date(2024, 1, 1))
    return {"MOB": mob, "BARE": bare}


def account(payment_mode="prepaid", funds="100.00"):
    _n[0] += 1
    customer = crm.create_customer(actor=ACTOR, kind="individual", first_name="Usage", last_name=f"Tester{_n[0]}")
    acc = ledger.open_account(actor=ACTOR, customer=customer, currency="EUR", payment_mode=payment_mode,
                              credit_limit="0" if payment_mode == "prepaid" else "500")
    if funds and payment_mode == "prepaid":
        cash = ledger.system_account("cash:DESK1", "EUR")
        ledger.post_transfer(actor=ACTOR, debit=cash, credit=acc, amount=funds, currency="EUR", kind="payment",
                             idempotency_key=f"usage-test-pay-{_n[0]}")
    return acc


def subscriber(acc, tariff, number):
    return subs.create_subscription(actor=ACTOR, billing_account=acc, tariff=tariff, phone_number=number,
                                    activate=True)


def make_world():
    """Call inside clock.travel_to(DAY)."""
    plan = make_plan()
    tariffs = make_catalog()
    rating = services.create_tariff_rating(actor=ACTOR, tariff=tariffs["MOB"], tenant=plan["tenant"], subject="MOB",
                                           categories={"voice": "call"})
    prepaid, postpaid = account("prepaid"), account("postpaid")
    return {**plan, "tariffs": tariffs, "rating": rating, "prepaid": prepaid, "postpaid": postpaid,
            "alice": subscriber(prepaid, tariffs["MOB"], "+15550001"),
            "bob": subscriber(postpaid, tariffs["MOB"], "+15550002"),
            "pending": subs.create_subscription(actor=ACTOR, billing_account=prepaid, tariff=tariffs["MOB"],
                                                phone_number="+15550003")}


def line(record_id, subject, destination, start, usage, *, kind="voice", source="sw1"):
    if isinstance(start, dt.datetime):
        start = start.isoformat().replace("+00:00", "Z")
    return f"{record_id},{source},{subject},{destination},{kind},{start},{usage}\n"


def csv_file(*lines, header=True) -> io.BytesIO:
    text = (HEADER if header else "") + "".join(lines)
    return io.BytesIO(text.encode())


def balance(acc) -> Decimal:
    acc.ledger_account.refresh_from_db()
    return acc.ledger_account.balance
