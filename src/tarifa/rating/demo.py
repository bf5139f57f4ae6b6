"""Demo rating: a retail tariff plan for the demo mobile tariff, a bundle, a declared usage
format, an import of usage with a few bad lines, and a re-rating.

Goes through the services. Loading twice changes nothing.
"""

import datetime as dt
import io

from tarifa.catalog.models import Tariff
from tarifa.kernel.clock import now
from tarifa.subscriptions.models import Subscription

from . import services, usage
from .models import RatingTenant, RerateRun, TariffRating, UsageBatch, UsageFormat

TENANT = "tarifa.demo"
ACTIVATION = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def _plan(actor):
    tenant = services.create_tenant(actor=actor, code=TENANT, name="Demo retail plans",
                                    description="Voice by destination and time of day, SMS, data per MB.")
    services.create_timing(actor=actor, tenant=tenant, code="PEAK", name="Weekdays 08:00–20:00",
                                  week_days=[1, 2, 3, 4, 5], start_time=dt.time(8))
    evening = services.create_timing(actor=actor, tenant=tenant, code="EVENING", name="Weekdays from 20:00",
                                     week_days=[1, 2, 3, 4, 5], start_time=dt.time(20))
    services.create_timing(actor=actor, tenant=tenant, code="WEEKEND", name="Saturday and Sunday", week_days=[6, 7])
    dests = {
        "NATIONAL": ("National", ["1"]),
        "UK": ("United Kingdom", ["44"]),
        "DE": ("Germany", ["49"]),
        "DE_MOBILE": ("Germany mobile", ["4915", "4916", "4917"]),
    }
    for code, (name, prefixes) in dests.items():
        services.create_destination(actor=actor, tenant=tenant, code=code, name=name, prefixes=prefixes)
    rates = {
        "R_NAT_PEAK": [("0", "0.10", "60s", "60s", "0s")],
        "R_NAT_OFF": [("0", "0.05", "60s", "60s", "0s")],
        "R_INTL": [("0.10", "0.60", "60s", "60s", "0s"), ("0", "0.40", "60s", "1s", "60s")],
        "R_SMS": [("0", "0.05", "1", "1", "0")],
        "R_DATA_MB": [("0", "0.01", "1000000", "1000000", "0")],
    }
    rate_objs = {}
    for code, slots in rates.items():
        rate_objs[code] = services.create_rate(actor=actor, tenant=tenant, code=code, slots=[
            {"connect_fee": f, "price": p, "rate_unit": u, "rate_increment": i, "group_interval_start": g}
            for f, p, u, i, g in slots])
    from .models import Destination

    dest = {d.code: d for d in Destination.objects.filter(tenant=tenant)}
    for code, d, r in (("DR_NAT_PEAK", "NATIONAL", "R_NAT_PEAK"), ("DR_NAT_OFF", "NATIONAL", "R_NAT_OFF"),
                       ("DR_INTL", "UK", "R_INTL"), ("DR_INTL", "DE", "R_INTL"), ("DR_INTL", "DE_MOBILE", "R_INTL"),
                       ("DR_SMS", None, "R_SMS"), ("DR_DATA", None, "R_DATA_MB")):
        services.create_destination_rate(actor=actor, tenant=tenant, code=code, destination=dest.get(d) if d else None,
                                         rate=rate_objs[r], rounding_method="*up", rounding_decimals=4,
                                         max_cost="5" if code == "DR_INTL" else "0",
                                         max_cost_strategy="*free" if code == "DR_INTL" else "")
    voice = services.create_rating_plan(actor=actor, tenant=tenant, code="RP_MOBILE", name="Mobile voice", bindings=[
        {"destination_rate_code": "DR_NAT_OFF", "timing": "*any", "weight": 10},
        {"destination_rate_code": "DR_NAT_PEAK", "timing": "PEAK", "weight": 20},
        {"destination_rate_code": "DR_NAT_OFF", "timing": "EVENING", "weight": 20},
        {"destination_rate_code": "DR_INTL", "timing": "*any", "weight": 10}])
    sms = services.create_rating_plan(actor=actor, tenant=tenant, code="RP_SMS", name="SMS",
                                      bindings=[{"destination_rate_code": "DR_SMS"}])
    data = services.create_rating_plan(actor=actor, tenant=tenant, code="RP_DATA", name="Data",
                                       bindings=[{"destination_rate_code": "DR_DATA"}])
    for category, plan in (("call", voice), ("sms", sms), ("data", data)):
        services.create_rating_profile(actor=actor, tenant=tenant, category=category, subject="*any",
                                       activation_time=ACTIVATION, rating_plan=plan)
    _ = evening
    return tenant


def load(*, actor) -> dict:
    tenant = RatingTenant.objects.filter(code=TENANT).first()
    if tenant is None:
        tenant = _plan(actor)
    if not UsageFormat.objects.filter(code="demo-switch").exists():
        services.create_usage_format(actor=actor, code="demo-switch", name="Demo switch (semicolons)", spec={
            "delimiter": ";", "header": False,
            "columns": {"record_id": 0, "subject": 1, "destination": 2, "start_time": 3, "usage": 4},
            "defaults": {"source": "demo-switch", "type": "voice"},
            "time_format": "%Y-%m-%d %H:%M:%S", "time_zone": "UTC", "time_unit": "s",
            "filters": [{"field": 5, "op": "eq", "value": "ANSWERED"}]},
            description="Answered calls of a switch that writes semicolon-separated lines without a header.")
    mobile = Tariff.objects.filter(code="MOB-DAY").first()
    if mobile is None:
        return {"tenants": RatingTenant.objects.count()}
    if not TariffRating.objects.filter(tariff=mobile).exists():
        services.create_tariff_rating(actor=actor, tariff=mobile, tenant=tenant, categories={"voice": "call"},
                                      subject="")
        services.create_bundle(actor=actor, tariff=mobile, code="NAT60", name="60 national minutes", usage_type="voice",
                               allowance="60m", period="month", destinations=["NATIONAL"])
    sub = (Subscription.objects.filter(tariff=mobile, status="active").exclude(phone_number="")
           .order_by("number").first())
    if sub is not None and not UsageBatch.objects.filter(file_name="demo-usage.csv").exists():
        start = now().replace(microsecond=0) + dt.timedelta(minutes=5)
        number = sub.phone_number
        rows = ["record_id,source,subject,destination,type,start_time,usage"]
        calls = [("15551230000", 125), ("442071234567", 95), ("4915112345678", 30), ("15559870000", 3000),
                 ("15559870001", 1200)]
        for i, (dest, seconds) in enumerate(calls):
            at = (start + dt.timedelta(minutes=40 * i)).isoformat().replace("+00:00", "Z")
            rows.append(f"demo-{i},demo,{number},{dest},voice,{at},{seconds}")
        at = (start + dt.timedelta(hours=5)).isoformat().replace("+00:00", "Z")
        rows += [f"demo-sms-1,demo,{number},15551230000,sms,{at},1",
                 f"demo-data-1,demo,{number},,data,{at},2500000",
                 f"demo-bad-1,demo,{number},15551230000,voice,not a time,60",
                 f"demo-bad-2,demo,+19990000000,15551230000,voice,{at},60",
                 f"demo-bad-3,demo,{number},15551230000,voice,{at}"]
        usage.import_file(io.BytesIO(("\n".join(rows) + "\n").encode()), format="csv", actor=actor,
                          file_name="demo-usage.csv")
        usage.import_records([{"record_id": "demo-api-1", "source": "partner", "subject": number,
                               "destination": "15551230000", "type": "voice",
                               "start_time": at, "usage": "45s"}], actor=actor, source="partner")
    if not RerateRun.objects.exists():
        usage.rerate(actor=actor, date_from=now() - dt.timedelta(days=1), date_to=now() + dt.timedelta(days=2))
    return {"tenants": RatingTenant.objects.count(), "batches": UsageBatch.objects.count()}
