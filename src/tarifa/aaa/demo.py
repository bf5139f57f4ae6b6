"""Demo network access: a NAS on 127.0.0.1, profiles for the internet tariffs, passwords on the demo's
internet subscriptions, and some sessions and authentication attempts.

Documented in README.md ("Demo data"): NAS 127.0.0.1 with the shared secret `testing123`;
logins demo1 … demo6 with the passwords `demo1-pass` … `demo6-pass` (demo1 and demo4 are active,
demo2 and demo3 suspended, demo5 terminated). Loading twice changes nothing.
"""

import time

from tarifa.catalog.models import Tariff
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.models import Subscription

from . import protocol, services
from .models import Nas, Profile

DEMO_NAS_SECRET = "testing123"


def load(*, actor) -> dict:
    if Nas.objects.filter(ip_address="127.0.0.1").exists():
        return {"nas": Nas.objects.count()}
    nas = services.create_nas(actor=actor, name="Demo BRAS", ip_address="127.0.0.1", secret=DEMO_NAS_SECRET,
                              type=Nas.Type.MIKROTIK, description="The demo's NAS: radclient on this machine.")
    services.create_nas(actor=actor, name="Demo Cisco BNG", ip_address="192.0.2.10", secret="demo-cisco-secret",
                        type=Nas.Type.CISCO, active=False, description="Not connected (an example of a Cisco ISG).")
    services.create_profile(actor=actor, name="Default", rate_down_kbps=10_000, rate_up_kbps=10_000)
    tariffs = {t.code: t for t in Tariff.objects.filter(code__in=["NET-100", "NET-500"])}
    if "NET-100" in tariffs:
        services.create_profile(actor=actor, name="Internet 100", tariff=tariffs["NET-100"], rate_down_kbps=100_000,
                                rate_up_kbps=50_000, ip_pool="home", interim_interval=300,
                                when_suspended=Profile.WhenSuspended.PAY_FIRST, pay_first_pool="pay-first",
                                pay_first_rate_down_kbps=1_000, pay_first_rate_up_kbps=1_000,
                                monthly_cap_mb=500_000, when_capped=Profile.WhenCapped.THROTTLE,
                                capped_rate_down_kbps=5_000, capped_rate_up_kbps=5_000)
    if "NET-500" in tariffs:
        services.create_profile(actor=actor, name="Internet 500", tariff=tariffs["NET-500"], rate_down_kbps=500_000,
                                rate_up_kbps=250_000, ip_pool="home", session_timeout=86_400,
                                attributes={"mikrotik": {"Mikrotik-Address-List": "internet-500"}})
    subs = list(Subscription.objects.filter(login__startswith="demo", service__service_type__category="internet")
                .order_by("login"))
    for sub in subs:
        if sub.status != Subscription.Status.TERMINATED:
            subscriptions.update_subscription(sub, actor=actor, password=f"{sub.login}-pass")
    live = [s for s in subs if s.status == Subscription.Status.ACTIVE]
    if live:
        services.set_access_settings(actor=actor, subscription=live[0], simultaneous_use=2)
    # Sessions: one open per active subscription, one that ended, and attempts in the log.
    now = time.time()
    records = []
    for i, sub in enumerate(live):
        sid = f"demo-{i + 1:04x}"
        ip = f"10.0.0.{i + 10}"
        records += [protocol.AcctRecord(nas.pk, protocol.START, sid, sub.login, ip, "aa:bb:cc:00:00:0%d" % i,
                                        "ether1", event_time=now - 7200, interim_interval=300),
                    protocol.AcctRecord(nas.pk, protocol.INTERIM, sid, sub.login, ip, session_time=7000,
                                        bytes_in=(i + 1) * 150_000_000, bytes_out=(i + 1) * 5_300_000_000,
                                        packets_in=(i + 1) * 200_000, packets_out=(i + 1) * 4_000_000,
                                        event_time=now - 200, interim_interval=300)]
    if live:
        first = live[0]
        records += [protocol.AcctRecord(nas.pk, protocol.START, "demo-old", first.login, "10.0.0.99",
                                        event_time=now - 90_000),
                    protocol.AcctRecord(nas.pk, protocol.STOP, "demo-old", first.login, "10.0.0.99",
                                        session_time=3600, bytes_in=52_000_000, bytes_out=1_900_000_000,
                                        terminate_cause="User-Request", event_time=now - 86_400)]
    result = services.apply_accounting(records, logins={s.login: s.pk for s in subs})
    from tarifa.kernel.clock import now as clock_now

    at = clock_now().timestamp()
    attempts = [(at, "accept", "", s.login, nas.pk, "127.0.0.1", s.pk, "aa:bb:cc:00:00:01", "pap") for s in live]
    suspended = [s for s in subs if s.status == Subscription.Status.SUSPENDED]
    attempts += [(at, "reject", "wrong password", s.login, nas.pk, "127.0.0.1", s.pk, "", "chap")
                 for s in suspended[:1]]
    attempts.append((at, "reject", "unknown login", "nobody", nas.pk, "127.0.0.1", None, "", "pap"))
    services.log_attempts(attempts)
    from . import coa_demo

    coa_demo.load(actor=actor, nas=nas, secret=DEMO_NAS_SECRET)
    return {"nas": 2, "profiles": Profile.objects.count(), "passwords": len(subs), "sessions": result["started"]}
