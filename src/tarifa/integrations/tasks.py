from procrastinate.contrib.django import app


@app.task(queue="notifications", name="integrations.deliver")
def deliver(notification_id: str):
    """One attempt; when it was the last and failed, the job fails too (the Jobs screen counts it)."""
    from .services import DeliveryFailed, deliver_now

    note = deliver_now(notification_id)
    if note is not None and getattr(note, "just_failed", False):
        raise DeliveryFailed(f"Notification {note.pk} to {note.recipient} failed after {note.attempts} attempts: "
                             f"{note.last_error}")


@app.periodic(cron="*/5 * * * *", periodic_id="integrations.retry_due")
@app.task(queue="notifications", name="integrations.retry_due")
def retry_due(timestamp: int):
    """A safety net: deliver what is due for a retry even if its scheduled job was lost."""
    from tarifa.kernel.clock import now

    from .models import Notification
    from .services import deliver_now

    failed = []
    for pk in Notification.objects.filter(status="retrying", next_attempt_at__lte=now()).values_list("pk", flat=True)[:500]:
        note = deliver_now(pk)
        if note is not None and getattr(note, "just_failed", False):
            failed.append(f"{note.pk} to {note.recipient}: {note.last_error}")
    if failed:
        from .services import DeliveryFailed

        raise DeliveryFailed(f"{len(failed)} notification(s) failed after their last attempt: " + "; ".join(failed))
