"""The only write path of the reports app: delivery schedules (and the daily roll-up, aggregates.rollup)."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError, ValidationFailed

from . import exports, framework
from .models import ReportSchedule

MAX_RECIPIENTS = 20


def _recipients(text: str) -> list[str]:
    out = [a.strip() for a in (text or "").replace(";", ",").replace("\n", ",").split(",") if a.strip()]
    if not out:
        raise ValidationFailed("At least one recipient.", code="recipients_required",
                               fields={"recipients": ["Give at least one e-mail address."]})
    if len(out) > MAX_RECIPIENTS:
        raise ValidationFailed(f"At most {MAX_RECIPIENTS} recipients.", code="too_many_recipients",
                               fields={"recipients": [f"At most {MAX_RECIPIENTS}."]})
    for a in out:
        try:
            validate_email(a)
        except ValidationError:
            raise ValidationFailed(f"{a[:80]} is not an e-mail address.", code="invalid_recipient",
                                   fields={"recipients": [f"{a[:80]}: not an e-mail address."]}) from None
    return out


def _check(report_code, parameters, actor):
    report = framework.get(report_code)
    if report is None:
        raise ValidationFailed("No such report.", code="unknown_report", fields={"report": ["No such report."]})
    if actor is not None and not isinstance(actor, str) and not actor.has_perm(report.permission):
        raise DomainError("You may not open this report.", code="permission_denied", status=403,
                          fields={"report": ["You may not open this report."]})
    parameters = parameters or {}
    if not isinstance(parameters, dict):
        raise ValidationFailed("Parameters: an object of names and values.", code="invalid_parameters",
                               fields={"parameters": ["An object of names and values."]})
    if {"from", "to"} & set(parameters):
        raise ValidationFailed("The period is the schedule's: leave out from and to.", code="invalid_parameters",
                               fields={"parameters": ["Leave out from and to: the frequency gives the period."]})
    try:
        framework.parse_params(report, {k: str(v) for k, v in parameters.items()})
    except DomainError as exc:
        raise ValidationFailed(exc.message, code="invalid_parameters", fields={"parameters": [exc.message]}) from None
    return {k: str(v) for k, v in parameters.items()}


@transaction.atomic
def create_schedule(*, actor, name, report, recipients, frequency=ReportSchedule.Frequency.DAILY,
                    format=ReportSchedule.Format.XLSX, parameters=None) -> ReportSchedule:  # noqa: A002
    """A new schedule; the report must exist and be open to the actor, the recipients be addresses."""
    parameters = _check(report, parameters, actor)
    recipients = "\n".join(_recipients(recipients))
    return recorded.create(ReportSchedule, actor=actor, name=name, report=report, parameters=parameters,
                           recipients=recipients, frequency=frequency, format=format)


@transaction.atomic
def update_schedule(schedule, *, actor, **changes) -> ReportSchedule:
    if "report" in changes or "parameters" in changes:
        changes["parameters"] = _check(changes.get("report", schedule.report),
                                       changes.get("parameters", schedule.parameters), actor)
    if "recipients" in changes:
        changes["recipients"] = "\n".join(_recipients(changes["recipients"]))
    return recorded.update(schedule, actor=actor, **changes)


def archive_schedule(schedule, *, actor, reason="") -> ReportSchedule:
    return recorded.archive(schedule, actor=actor, reason=reason)


def period_for(schedule, as_of: dt.date) -> tuple[dt.date, dt.date]:
    """The closed period a delivery on `as_of` reports: yesterday, last week (Mon–Sun), last month."""
    if schedule.frequency == ReportSchedule.Frequency.WEEKLY:
        end = as_of - dt.timedelta(days=as_of.weekday() + 1)
        return end - dt.timedelta(days=6), end
    if schedule.frequency == ReportSchedule.Frequency.MONTHLY:
        end = as_of.replace(day=1) - dt.timedelta(days=1)
        return end.replace(day=1), end
    yesterday = as_of - dt.timedelta(days=1)
    return yesterday, yesterday


def is_due(schedule, as_of: dt.date) -> bool:
    if schedule.archived_at is not None or schedule.last_sent_on == as_of:
        return False
    if schedule.frequency == ReportSchedule.Frequency.WEEKLY:
        return as_of.weekday() == 0
    if schedule.frequency == ReportSchedule.Frequency.MONTHLY:
        return as_of.day == 1
    return True


def send(schedule, *, actor, as_of: dt.date | None = None) -> ReportSchedule:
    """Run the schedule's report for its period and e-mail the file to every recipient (through the
    mail server, or into the local outbox where none is configured). Records the outcome."""
    from tarifa.integrations.senders import DeliveryError
    from tarifa.integrations.services import send_staff_email

    as_of = as_of or today()
    report = framework.get(schedule.report)
    start, end = period_for(schedule, as_of)
    params = framework.parse_params(report, {**schedule.parameters, "from": start.isoformat(), "to": end.isoformat()})
    result = framework.run(report, params)
    if schedule.format == ReportSchedule.Format.CSV:
        files = [(f"{report.code}_{start}_{end}.csv", exports.csv_bytes(result), "text/csv")]
    else:
        files = [(f"{report.code}_{start}_{end}.xlsx", exports.xlsx_bytes(result),
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")]
    subject = f"{report.name}: {start}" + (f" – {end}" if end != start else "")
    body = (f"{schedule.name}\n\n{report.name} for {start} to {end}: {len(result.rows)} rows, attached.\n"
            f"{report.description}\n")
    errors = []
    for to in _recipients(schedule.recipients):
        try:
            send_staff_email(to=to, subject=subject, body=body, attachments=files)
        except DeliveryError as exc:
            errors.append(f"{to}: {exc}")
    return recorded.update(schedule, actor=actor, action="send", message=f"Sent for {start} to {end}",
                           last_sent_on=as_of, last_error="\n".join(errors)[:2000])


def send_due(*, as_of: dt.date) -> int:
    """The daily job: every schedule due on `as_of` and not yet sent that day. Idempotent."""
    sent = 0
    for schedule in ReportSchedule.objects.filter(archived_at__isnull=True).order_by("pk"):
        if is_due(schedule, as_of):
            send(schedule, actor="system", as_of=as_of)
            sent += 1
    return sent
