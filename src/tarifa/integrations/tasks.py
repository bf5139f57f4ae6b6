from procrastinate.contrib.django import app


@app.task(queue="notifications", name="integrations.deliver")
def deliver(notification_id: str):
    from .services import deliver_now

    deliver_now(notification_id)


@app.periodic(cron="*/5 * * * *", periodic_id="integrations.retry_due")
@app.task(queue="notifications", name="integrations.retry_due")
def retry_due(timestamp: int):
    """A safety net: deliver what is due for a retry even if its scheduled job was lost."""
    from tarifa.kernel.clock import now

    from .models import Notification
    from .services import deliver_now

    for pk in Notification.objects.filter(status="retrying", next_attempt_at__lte=now()).values_list("pk", flat=True)[:500]:
        deliver_now(pk)
