"""Demo catalog: internet, telephony and TV under a handful of tariffs, with VAT.

Loading twice changes nothing (records are found by code).
"""

import datetime as dt


from tarifa.kernel.clock import today
from tarifa.kernel.money import default_currency

from . import services
from .models import (Channel, ChannelPackage, DevicePrice, OneTimeFee, Service, ServiceType, Tariff, TariffParameter,
                     Tax)
from .pricing import month_start

CURRENCY = default_currency()

SERVICE_TYPES = [
    ("internet", "Internet access", "internet", ["login", "ip_address", "mac_address"]),
    ("telephony", "Mobile telephony", "mobile", ["phone_number", "iccid", "imsi"]),
    ("iptv", "IPTV", "iptv", ["smart_card"]),
]
SERVICES = [("home-internet", "Home internet", "internet"), ("mobile", "Mobile voice and data", "telephony"),
            ("tv", "Television", "iptv")]
CHANNELS = [("news24", "News 24", 1), ("sport1", "Sport One", 2), ("kids", "Kids", 3), ("movies", "Movies", 4),
            ("music", "Music", 5), ("docs", "Documentary", 6)]
PACKAGES = [("basic", "Basic", ["news24", "kids", "music"]), ("sport", "Sport", ["sport1"]),
            ("cinema", "Cinema", ["movies", "docs"])]
FEES = {"activation": "10.00", "reconnection": "3.00", "voluntary_suspension": "2.00", "termination": "0"}
TARIFFS = [
    # code, name, service, period, proration, fee, extra
    ("NET-100", "Internet 100", "home-internet", "month", "by_day", "30.00",
     dict(warn_below="5.00", promised_payment_amount="20.00")),
    ("NET-500", "Internet 500", "home-internet", "month", "by_day", "45.00",
     dict(warn_below="5.00", promised_payment_amount="30.00")),
    ("MOB-DAY", "Mobile daily", "mobile", "day", "by_day", "0.50",
     dict(warn_below="2.00", suspend_below="0", resume_at="1.00")),
    ("TV-BASIC", "TV basic", "tv", "month", "none", "8.00", dict(charge_suspended_days=True)),
]

# The device price list the demo warehouse's items refer to (inventory/demo.py): code, name,
# sale price, monthly rent, installment total, months ("0": not offered that way).
DEVICE_PRICES = [
    ("DEV-ROUTER-AX", "Wi-Fi 6 router", "89.00", "3.50", "96.00", 12),
    ("DEV-ONT", "Fibre ONT", "0", "2.00", "0", 0),
    ("DEV-STB-4K", "4K set-top box", "79.00", "4.00", "84.00", 6),
    ("DEV-SIM", "SIM card", "1.00", "0", "0", 0),
]


def load(*, actor) -> dict:
    types = {}
    for code, name, category, kinds in SERVICE_TYPES:
        types[code] = ServiceType.objects.filter(code=code).first() or services.create_service_type(
            actor=actor, code=code, name=name, category=category, identifier_kinds=kinds)
    svcs = {}
    for code, name, st in SERVICES:
        svcs[code] = Service.objects.filter(code=code).first() or services.create_service(
            actor=actor, code=code, name=name, service_type=types[st])
    if not Tax.objects.filter(code="VAT").exists():
        services.create_tax(actor=actor, code="VAT", name="Value added tax", rate="20", inclusive=True)
        services.create_tax(actor=actor, code="TV-LEVY", name="Broadcasting levy", rate="2", inclusive=False,
                            service_types=[types["iptv"]])
        old = services.create_tax(actor=actor, code="VAT-OLD", name="VAT before 2020", rate="18", inclusive=True,
                                  valid_to=dt.date(2019, 12, 31))
        services.archive(old, actor=actor, reason="superseded (demo)")
    channels = {}
    for code, name, number in CHANNELS:
        channels[code] = Channel.objects.filter(code=code).first() or services.create_channel(
            actor=actor, code=code, name=name, number=number)
    packages = {}
    for code, name, members in PACKAGES:
        packages[code] = ChannelPackage.objects.filter(code=code).first() or services.create_channel_package(
            actor=actor, code=code, name=name, channels=[channels[c] for c in members])
    start = month_start(today()) - dt.timedelta(days=400)
    for code, name, svc, period, proration, fee, extra in TARIFFS:
        if Tariff.objects.filter(code=code).exists():
            continue
        fees = dict(FEES)
        if svc == "mobile":
            fees.update({"sim_replacement": "5.00", "number_change": "4.00"})
        prices = []
        if svc == "tv":
            prices = [{"package": packages["sport"], "amount": "5.00"}, {"package": packages["cinema"], "amount": "6.00"},
                      {"channel": channels["music"], "amount": "1.50"}]
        tariff = services.create_tariff(actor=actor, code=code, name=name, service=svcs[svc], currency=CURRENCY,
                                        period=period, proration=proration, recurring_fee=fee, valid_from=start,
                                        one_time_fees=fees, channel_prices=prices, **extra)
        if svc == "home-internet":
            services.create_parameter(actor=actor, tariff=tariff, code="speed", label="Speed", kind="integer",
                                      value=code.split("-")[1], unit="Mbit/s")
            services.create_parameter(actor=actor, tariff=tariff, code="static_ip", label="Static IP address",
                                      kind="choice", choices=["no", "yes"], required=False)
        if svc == "mobile":
            services.create_parameter(actor=actor, tariff=tariff, code="lines", label="Number of lines",
                                      kind="integer", value="1")
        if svc == "tv":
            services.create_parameter(actor=actor, tariff=tariff, code="package", label="Channel package",
                                      kind="choice", choices=[p for p, _, _ in PACKAGES], required=False)
    # A price rise that has not applied yet.
    net = Tariff.objects.get(code="NET-100")
    future = month_start(today() + dt.timedelta(days=40))
    if not net.price_versions.filter(valid_from__gt=today()).exists():
        services.create_price_version(actor=actor, tariff=net, valid_from=future, recurring_fee="32.00",
                                      note="Price rise (demo)")
    for code, name, sale, rent, total, months in DEVICE_PRICES:
        if not DevicePrice.objects.filter(code=code).exists():
            services.create_device_price(actor=actor, code=code, name=name, currency=CURRENCY, sale_price=sale,
                                         monthly_rent=rent, installment_total=total, installment_months=months)
    return {"service_types": len(types), "services": len(svcs), "tariffs": Tariff.objects.count(),
            "device_prices": DevicePrice.objects.count(),
            "channels": len(channels), "packages": len(packages), "taxes": Tax.objects.count(),
            "one_time_fees": OneTimeFee.objects.count(), "parameters": TariffParameter.objects.count()}
