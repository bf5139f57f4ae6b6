"""CachedRater answers exactly what rate() answers, on the interop plans and random plans."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarifa.rating.engine import SECOND, RatingError, load_directory, rate
from tarifa.rating.engine.fast import CachedRater
from tarifa.rating.engine.model import _epoch_ns

from .test_properties import PROPERTY_SETTINGS, ZONES, plans

INTEROP = Path(__file__).resolve().parents[5] / "shared" / "interop" / "cgrates"
if not INTEROP.is_dir():  # the repository may sit elsewhere than beside ../shared
    INTEROP = Path("/work/shared/interop/cgrates")


def reference(plan, **kw):
    try:
        cost = rate(plan, **kw)
    except RatingError as exc:
        return ("error", exc.code)
    first = cost.spans[0] if cost.spans else None
    return (cost.cost, first.rating_plan_id if first else None, first.destination_id if first else None)


def fast(rater, plan, *, answer_time, usage, **kw):
    try:
        got = rater.rate(start_ns=_epoch_ns(answer_time), tz=answer_time.tzinfo,
                         usage=int(usage.total_seconds() * SECOND) if isinstance(usage, timedelta) else usage, **kw)
    except RatingError as exc:
        return ("error", exc.code)
    return (got.cost, got.rating_plan_id or None, got.destination_id or None)


def profile_keys(plan):
    return sorted({(p.tenant, p.category, p.subject) for p in plan.rating_profiles})


@pytest.mark.parametrize("name", sorted(p.name for p in INTEROP.iterdir() if p.is_dir()) if INTEROP.is_dir() else [])
def test_interop_plans_agree(name):
    plan = load_directory(INTEROP / name)
    rnd = random.Random(name)
    rater = CachedRater(plan, rounding_decimals=5)
    keys = profile_keys(plan)
    prefixes = sorted({p for d in plan.destinations.values() for p in d.prefixes}) or ["1"]
    zones = [UTC, ZoneInfo("Europe/Berlin")]
    for _ in range(3000):
        tenant, category, subject = rnd.choice(keys)
        if rnd.random() < 0.1:
            subject = f"unknown{rnd.randrange(5)}"
        destination = rnd.choice(prefixes) + str(rnd.randrange(1000))
        answer_time = datetime(2015 + rnd.randrange(8), rnd.randrange(1, 13), rnd.randrange(1, 29),
                               rnd.randrange(24), rnd.randrange(60), rnd.randrange(60), tzinfo=rnd.choice(zones))
        usage_type = rnd.choice(["voice", "voice", "data", "sms"])
        usage = timedelta(seconds=rnd.randrange(0, 4000)) if usage_type == "voice" else rnd.randrange(0, 10**7)
        kw = dict(tenant=tenant, category=category, subject=subject, destination=destination,
                  usage_type=usage_type)
        want = reference(plan, answer_time=answer_time, usage=usage, **kw)
        got = fast(rater, plan, answer_time=answer_time, usage=usage, **kw)
        assert got == want, (kw, answer_time, usage)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_random_plans_agree(data):
    plan = data.draw(plans())
    rater = CachedRater(plan, rounding_decimals=6)
    keys = profile_keys(plan)
    for _ in range(40):
        tenant, category, subject = data.draw(st.sampled_from(keys))
        zone = data.draw(st.sampled_from(ZONES))
        start = datetime(2024, 3, 29, tzinfo=zone) + timedelta(minutes=data.draw(st.integers(0, 60 * 24 * 4)))
        usage = timedelta(seconds=data.draw(st.integers(0, 7200)))
        destination = data.draw(st.sampled_from(["1", "12", "123", "49", "4930", "999", ""]))
        usage_type = data.draw(st.sampled_from(["voice", "data"]))
        kw = dict(tenant=tenant, category=category, subject=subject, destination=destination, usage_type=usage_type)
        want = reference(plan, answer_time=start, usage=usage, rounding_decimals=6, **kw)
        got = fast(rater, plan, answer_time=start, usage=usage, **kw)
        assert got == want
