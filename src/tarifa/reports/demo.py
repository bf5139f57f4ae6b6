"""Demo data of the reports app: a scheduled delivery (the figures themselves come from the other apps' demo data)."""


def load(*, actor) -> dict:
    from . import services

    schedule = services.create_schedule(actor=actor, name="Daily payments to finance", report="payments-by-channel",
                                        recipients="finance@example.com", frequency="daily", format="xlsx")
    return {"report_schedules": [schedule.name]}
