"""`tarifa demo synth … --usage-per-subscription K`: usage for the synthetic operator.

After subscriptions' synth made accounts and subscriptions, this writes K usage records per
subscription that has a phone number or a login (voice and data for mobile, data for
internet), in Tarifa's built-in CSV format, into a file under `--usage-dir`, and imports
it (unless `--no-import`) through the real pipeline. The first run also loads a synthetic
tariff plan — 1,000 destinations with 5,000 prefixes, 3 timings (off-peak always, peak
and evening on weekdays), 60 price tiers, data per MB — as a CGRateS directory through
the importer, and rates the synthetic tariffs with it.

Records are made by PostgreSQL (`COPY (SELECT … generate_series) TO STDOUT`), deterministic
for a seed; about 1 record in 200 dials a number no rate covers (rejected `no_rate`).
"""

import datetime as dt
import random
import tempfile
import time
from pathlib import Path

from django.db import connection

TENANT = "synth"
TIERS = 60
DESTINATIONS = 1000
PREFIXES_PER_DESTINATION = 5


def add_arguments(parser):
    parser.add_argument("--usage-per-subscription", type=int, default=0,
                        help="synth: usage records per subscription with a phone number or login (0: none).")
    parser.add_argument("--usage-dir", default=None, help="synth: where to write the usage file (default var/usage).")
    parser.add_argument("--no-import", action="store_true", help="synth: write the usage file but do not import it.")


def plan_files(seed: int = 1) -> dict[str, str]:
    """The synthetic tariff plan as CGRateS CSV texts."""
    rnd = random.Random(seed)
    prefixes: set[str] = set()
    while len(prefixes) < DESTINATIONS * PREFIXES_PER_DESTINATION:
        length = rnd.choice([3, 4, 4, 5, 5, 6])
        prefix = str(rnd.randrange(10 ** (length - 1), 10**length))
        if not prefix.startswith("999"):  # 999… stays unrated on purpose
            prefixes.add(prefix)
    ordered = sorted(prefixes)
    rnd.shuffle(ordered)
    dest = ["#Id,Prefix"]
    for d in range(DESTINATIONS):
        for p in ordered[d * PREFIXES_PER_DESTINATION:(d + 1) * PREFIXES_PER_DESTINATION]:
            dest.append(f"DST_{d:04d},{p}")
    timings = ["#Tag,Years,Months,MonthDays,WeekDays,Time", "OFFPEAK,*any,*any,*any,*any,00:00:00",
               "PEAK,*any,*any,*any,1;2;3;4;5,08:00:00", "EVENING,*any,*any,*any,1;2;3;4;5,19:00:00"]
    rates = ["#Id,ConnectFee,Rate,RateUnit,RateIncrement,GroupIntervalStart"]
    for t in range(TIERS):
        base = 1 + t
        if t % 3 == 0:  # first minute whole, then per second
            rates.append(f"RT_{t:02d}_PEAK,0.05,{base / 100:.2f},60s,60s,0s")
            rates.append(f"RT_{t:02d}_PEAK,0,{base / 200:.3f},60s,1s,60s")
        else:
            rates.append(f"RT_{t:02d}_PEAK,0,{base / 100:.2f},60s,{'1s' if t % 3 == 1 else '60s'},0s")
        rates.append(f"RT_{t:02d}_OFF,0,{base / 200:.3f},60s,60s,0s")
    rates += ["RT_DATA,0,0.01,1000000,1000000,0", "RT_SMS,0,0.05,1,1,0"]
    drs = ["#Id,DestinationId,RatesTag,RoundingMethod,RoundingDecimals,MaxCost,MaxCostStrategy"]
    for d in range(DESTINATIONS):
        t = d % TIERS
        drs.append(f"DR_{t:02d}_PEAK,DST_{d:04d},RT_{t:02d}_PEAK,*up,4,0,")
        drs.append(f"DR_{t:02d}_OFF,DST_{d:04d},RT_{t:02d}_OFF,*up,4,0,")
    drs += ["DR_DATA,*any,RT_DATA,*up,4,0,", "DR_SMS,*any,RT_SMS,*up,4,0,"]
    plans = ["#Id,DestinationRatesId,TimingTag,Weight"]
    for t in range(TIERS):
        plans += [f"RP_VOICE,DR_{t:02d}_OFF,OFFPEAK,10", f"RP_VOICE,DR_{t:02d}_PEAK,PEAK,20",
                  f"RP_VOICE,DR_{t:02d}_OFF,EVENING,30"]
    plans += ["RP_DATA,DR_DATA,*any,10", "RP_SMS,DR_SMS,*any,10"]
    profiles = ["#Tenant,Category,Subject,ActivationTime,RatingPlanId,RatesFallbackSubject",
                f"{TENANT},call,*any,2000-01-01T00:00:00Z,RP_VOICE,", f"{TENANT},data,*any,2000-01-01T00:00:00Z,RP_DATA,",
                f"{TENANT},sms,*any,2000-01-01T00:00:00Z,RP_SMS,"]
    return {"Destinations.csv": dest, "Timings.csv": timings, "Rates.csv": rates, "DestinationRates.csv": drs,
            "RatingPlans.csv": plans, "RatingProfiles.csv": profiles}


def ensure_plan(*, actor="synth", seed: int = 1) -> dict:
    """Load the synthetic plan (once) and rate the synthetic tariffs with it."""
    from tarifa.catalog.models import Tariff

    from . import services
    from .cgrates_io import import_directory
    from .models import RatingTenant, TariffRating

    loaded = {}
    tenant = RatingTenant.objects.filter(code=TENANT).first()
    if tenant is None or tenant.plan_version == 0:
        with tempfile.TemporaryDirectory(prefix="tarifa-synth-plan-") as tmp:
            for name, rows in plan_files(seed).items():
                Path(tmp, name).write_text("\n".join(rows) + "\n")
            loaded = import_directory(tmp, tenant=TENANT, actor=actor)["tenants"][TENANT]
        tenant = RatingTenant.objects.get(code=TENANT)
    for tariff in Tariff.objects.filter(code__in=["MOB-DAY", "NET-100", "NET-500"]):
        if not TariffRating.objects.filter(tariff=tariff, archived_at__isnull=True).exists():
            services.create_tariff_rating(actor=actor, tariff=tariff, tenant=tenant, categories={"voice": "call"})
    return loaded


USAGE_SQL = """
COPY (
  SELECT s.number || '-' || %(seed)s || '-' || j AS record_id, 'synth' AS source,
         CASE WHEN s.phone_number <> '' THEN s.phone_number ELSE s.login END AS subject,
         CASE WHEN s.kind = 'voice' THEN
              CASE WHEN h2 %% 200 = 0 THEN '999' ELSE (%(prefixes)s::text[])[1 + h1 %% %(nprefixes)s] END
              || lpad((h2 %% 1000000)::text, 6, '0') ELSE '' END AS destination,
         s.kind AS type,
         to_char((s.since + (h1 %% s.span_s) * interval '1 second') AT TIME ZONE 'UTC',
                 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS start_time,
         CASE WHEN s.kind = 'voice' THEN 1 + h2 %% 600 ELSE 1000 + h2 %% 50000000 END AS usage
  FROM (
    SELECT sub.number, sub.phone_number, sub.login, j,
           CASE WHEN sub.phone_number <> '' AND j %% 5 <> 0 THEN 'voice' ELSE 'data' END AS kind,
           sub.activated_on::timestamptz AS since,
           greatest(extract(epoch FROM %(now)s::timestamptz - sub.activated_on::timestamptz)::bigint, 1) AS span_s,
           abs(hashtext(sub.number || ':' || j || ':a:' || %(seed)s)) AS h1,
           abs(hashtext(sub.number || ':' || j || ':b:' || %(seed)s)) AS h2
    FROM subscriptions_subscription sub CROSS JOIN generate_series(1, %(k)s) j
    WHERE sub.status IN ('active', 'suspended') AND sub.activated_on IS NOT NULL
      AND (sub.phone_number <> '' OR sub.login <> '')
  ) s
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def write_usage(path: Path, *, per_subscription: int, seed: int = 1) -> int:
    """Write the usage file (streamed out of PostgreSQL); returns the number of records."""
    from tarifa.kernel.clock import now

    from .models import DestinationPrefix

    prefixes = sorted(DestinationPrefix.objects.filter(destination__tenant__code=TENANT)
                      .values_list("prefix", flat=True))
    lines = 0
    params = {"seed": seed, "k": per_subscription, "prefixes": prefixes, "nprefixes": len(prefixes) or 1,
              "now": now() - dt.timedelta(minutes=1)}
    with connection.cursor() as cursor, open(path, "wb") as out:
        with cursor.cursor.copy(USAGE_SQL, params) as copy:
            for data in copy:
                out.write(data)
                lines += bytes(data).count(b"\n")
    return max(lines - 1, 0)


def run(*, summary=None, usage_per_subscription=0, usage_dir=None, no_import=False, seed=1, actor="synth",
        **_options) -> dict:
    k = int(usage_per_subscription or 0)
    if k <= 0:
        return {"usage_records": 0}
    from tarifa.kernel.home import var_dir

    from . import usage

    started = time.monotonic()
    plan = ensure_plan(actor=actor, seed=seed)
    directory = Path(usage_dir) if usage_dir else var_dir() / "usage"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"synth-usage-{seed}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.csv"
    t0 = time.monotonic()
    records = write_usage(path, per_subscription=k, seed=seed)
    result = {"usage_file": str(path), "usage_records": records, "write_s": round(time.monotonic() - t0, 2),
              "plan": plan}
    if not no_import:
        t0 = time.monotonic()
        with open(path, "rb") as fh:
            batch = usage.import_file(fh, format="csv", actor=actor, file_name=path.name,
                                      file_size=path.stat().st_size)
        seconds = time.monotonic() - t0
        result["import"] = {**batch.summary(), "seconds": round(seconds, 2),
                            "records_per_s": round(batch.read / seconds, 1) if seconds else None,
                            "timings": batch.timings}
    result["seconds"] = round(time.monotonic() - started, 2)
    return result
