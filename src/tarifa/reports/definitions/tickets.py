"""Ticket reports: the load per type and step, and how the steps keep their SLA. Read from the
tickets app's tickets and their flow history (append-only: each move records the time spent at
the step it left)."""

from tarifa.kernel.clock import now

from ..framework import COUNT, DURATION, PERCENT, Chart, Column, Report, register, sql
from .common import args

TICKETS = "tickets.view_ticket"

register(Report(
    code="tickets-by-type-step", name="Tickets by type and step", group="Tickets", permission=TICKETS,
    description="Per ticket type and step: the tickets open at the step now and how many of them are past "
                "their due time (overdue), the average time tickets spent at the step before leaving it in "
                "the period, and within the period the tickets opened at the step (the type's first step) "
                "and closed by entering it (a final step).",
    source="tickets (open, overdue: now) and their flow history (opened, moved, time at step: in the period)",
    columns=[Column("ticket_type", "Type"), Column("step", "Step"), Column("step_name", "Step name"),
             Column("open", "Open", COUNT, total=True), Column("overdue", "Overdue", COUNT, total=True),
             Column("avg_seconds", "Average time at step", DURATION),
             Column("opened", "Opened", COUNT, total=True), Column("closed", "Closed", COUNT, total=True)],
    query=lambda p: sql("""SELECT tt.code AS ticket_type, s.code AS step, s.name AS step_name,
       (SELECT count(*) FROM tickets_ticket t WHERE t.step_id = s.id AND t.closed_at IS NULL) AS open,
       (SELECT count(*) FROM tickets_ticket t WHERE t.step_id = s.id AND t.closed_at IS NULL
           AND t.due_at < %(now)s) AS overdue,
       (SELECT CAST(round(avg(f.seconds_at_step)) AS bigint) FROM tickets_flowentry f
         WHERE f.from_step_id = s.id AND f.kind = 'moved' AND f.at >= %(start)s AND f.at < %(end)s) AS avg_seconds,
       (SELECT count(*) FROM tickets_flowentry f WHERE f.to_step_id = s.id AND f.kind = 'opened'
           AND f.at >= %(start)s AND f.at < %(end)s) AS opened,
       (SELECT count(*) FROM tickets_flowentry f WHERE f.to_step_id = s.id AND f.kind = 'moved' AND s.final
           AND f.at >= %(start)s AND f.at < %(end)s) AS closed
       FROM tickets_step s JOIN tickets_tickettype tt ON tt.id = s.ticket_type_id
      WHERE s.archived_at IS NULL OR EXISTS (SELECT 1 FROM tickets_ticket t WHERE t.step_id = s.id)
      ORDER BY tt.code, s."order", s.code""", args(p, now=now())),
    chart=Chart(x="step", y="open", series="ticket_type")))

register(Report(
    code="tickets-sla", name="Ticket SLA", group="Tickets", permission=TICKETS,
    description="Per ticket type and step with an SLA: the tickets that left the step in the period, how many "
                "within the step's SLA and how many late (time at the step over the SLA), and the share "
                "within.",
    source="the tickets' flow history (moves out of a step with its time at the step), by time moved",
    columns=[Column("ticket_type", "Type"), Column("step", "Step"), Column("sla_minutes", "SLA (minutes)", COUNT),
             Column("left_step", "Left the step", COUNT, total=True),
             Column("within", "Within SLA", COUNT, total=True), Column("late", "Late", COUNT, total=True),
             Column("within_percent", "Within SLA %", PERCENT)],
    query=lambda p: sql("""SELECT tt.code AS ticket_type, s.code AS step, s.sla_minutes,
       count(f.id) AS left_step,
       count(f.id) FILTER (WHERE f.seconds_at_step <= s.sla_minutes * 60) AS within,
       count(f.id) FILTER (WHERE f.seconds_at_step > s.sla_minutes * 60) AS late,
       CASE WHEN count(f.id) > 0 THEN round(100.0 * count(f.id) FILTER (WHERE f.seconds_at_step <= s.sla_minutes * 60)
            / count(f.id), 1) END AS within_percent
       FROM tickets_step s JOIN tickets_tickettype tt ON tt.id = s.ticket_type_id
       LEFT JOIN tickets_flowentry f ON f.from_step_id = s.id AND f.kind = 'moved'
            AND f.at >= %(start)s AND f.at < %(end)s
      WHERE s.sla_minutes IS NOT NULL AND (s.archived_at IS NULL OR f.id IS NOT NULL)
      GROUP BY tt.code, s.id, s.code, s.sla_minutes, s."order" ORDER BY tt.code, s."order", s.code""", args(p)),
    chart=Chart(x="step", y="late", series="ticket_type")))
