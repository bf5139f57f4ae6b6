import datetime as dt

from procrastinate.contrib.django import app


@app.periodic(cron="10 0 * * *", periodic_id="reports.nightly")
@app.task(queue="reports", name="reports.nightly", queueing_lock="reports.nightly")
def nightly(timestamp: int) -> dict:
    """After midnight: roll up yesterday's figures (and any of the last 7 days not rolled up yet),
    then send the scheduled reports due today. A missed night is caught up by the next."""
    from tarifa.kernel.clock import today

    from .aggregates import rollup
    from .models import RolledUpDay
    from .services import send_due

    day = today()
    done = set(RolledUpDay.objects.filter(day__gte=day - dt.timedelta(days=7)).values_list("day", flat=True))
    rolled = 0
    for back in range(7, 0, -1):
        d = day - dt.timedelta(days=back)
        if d not in done or back == 1:
            rolled += rollup(d, d)
    return {"rolled_up_days": rolled, "reports_sent": send_due(as_of=day)}
