from procrastinate.contrib.django import app


@app.periodic(cron="*/5 * * * *", periodic_id="tickets.escalate_overdue")
@app.task(queue="default", name="tickets.escalate_overdue", queueing_lock="tickets.escalate_overdue")
def escalate_overdue(timestamp: int):
    """Every five minutes: escalate tickets past their step's SLA (reassign, announce)."""
    from .services import escalate_overdue as run

    run(actor="system:sla")
