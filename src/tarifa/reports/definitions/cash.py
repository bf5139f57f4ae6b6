"""Payments and cash desk reports: the payment journal by channel, desks and cashiers, vouchers."""

from .. import aggregates
from ..framework import CASH, COUNT, DATE, MONEY, Chart, Column, Report, register, sql
from .common import BRANCH, CHANNEL, CURRENCY, DESK, args, choices_of, day

CHANNELS = choices_of("payments.Payment", "channel")

# The payment journal: every payment received in the period (by its receipt time), reversed ones
# included in `amount` and counted again in `reversed` (by the time of the reversal).
PAYMENTS = """
WITH r AS (
  SELECT {rd} AS day, p.channel, p.currency, count(*) AS payments, sum(p.amount) AS amount
    FROM payments_payment p
   WHERE p.received_at >= %(start)s AND p.received_at < %(end)s
     AND (%(currency)s::text IS NULL OR p.currency = %(currency)s)
     AND (%(channel)s::text IS NULL OR p.channel = %(channel)s)
     AND (%(branch)s::text IS NULL OR p.branch = %(branch)s)
   GROUP BY 1, 2, 3),
v AS (
  SELECT {vd} AS day, p.channel, p.currency, sum(p.amount) AS reversed
    FROM payments_payment p
   WHERE p.reversed_at >= %(start)s AND p.reversed_at < %(end)s
     AND (%(currency)s::text IS NULL OR p.currency = %(currency)s)
     AND (%(channel)s::text IS NULL OR p.channel = %(channel)s)
     AND (%(branch)s::text IS NULL OR p.branch = %(branch)s)
   GROUP BY 1, 2, 3)
SELECT coalesce(r.day, v.day) AS day, coalesce(r.channel, v.channel) AS channel,
       coalesce(r.currency, v.currency) AS currency, coalesce(r.payments, 0) AS payments,
       coalesce(r.amount, 0) AS amount, coalesce(v.reversed, 0) AS reversed,
       coalesce(r.amount, 0) - coalesce(v.reversed, 0) AS net
  FROM r FULL JOIN v ON v.day = r.day AND v.channel = r.channel AND v.currency = r.currency
 ORDER BY 1, 2, 3
"""


def payments_by_channel(params):
    return aggregates.payments(
        params, lambda p: sql(PAYMENTS.format(rd=day("p.received_at"), vd=day("p.reversed_at")), args(p)))


register(Report(
    code="payments-by-channel", name="Payments by channel", group="Payments", permission=CASH,
    description="Payments received per day and channel (cash, bank transfer, card, terminal, voucher, mobile): "
                "how many, how much, and what was reversed that day; totals per currency.",
    source="the payment journal (payments by time received; reversals by time reversed)",
    params=[CURRENCY, CHANNEL, BRANCH],
    columns=[Column("day", "Day", DATE), Column("channel", "Channel", labels=CHANNELS), Column("currency", "Currency"),
             Column("payments", "Payments", COUNT, total=True), Column("amount", "Amount", MONEY, total=True),
             Column("reversed", "Reversed", MONEY, total=True), Column("net", "Net", MONEY, total=True)],
    query=payments_by_channel, chart=Chart(x="day", y="amount", series="channel")))

GATEWAYS = """
SELECT coalesce(g.code, '(none)') AS gateway, coalesce(g.name, '') AS gateway_name, p.channel, p.currency,
       count(*) AS payments, sum(p.amount) AS amount,
       count(*) FILTER (WHERE p.status = 'reversed') AS reversed
  FROM payments_payment p LEFT JOIN payments_paymentgateway g ON g.id = p.gateway_id
 WHERE p.received_at >= %(start)s AND p.received_at < %(end)s
   AND (%(currency)s::text IS NULL OR p.currency = %(currency)s)
   AND (%(channel)s::text IS NULL OR p.channel = %(channel)s)
 GROUP BY 1, 2, 3, 4 ORDER BY 4, 1, 3
"""

register(Report(
    code="payments-by-gateway", name="Payments by gateway", group="Payments", permission=CASH,
    description="Payments received per gateway (terminal networks, card providers; '(none)' for desks and "
                "manual entries) and channel.",
    source="payments by time received",
    params=[CURRENCY, CHANNEL],
    columns=[Column("gateway", "Gateway"), Column("gateway_name", "Name"), Column("channel", "Channel", labels=CHANNELS),
             Column("currency", "Currency"), Column("payments", "Payments", COUNT, total=True),
             Column("amount", "Amount", MONEY, total=True), Column("reversed", "Reversed since", COUNT, total=True)],
    query=lambda p: sql(GATEWAYS, args(p)), chart=Chart(x="gateway", y="amount", series="currency")))

# A desk's day: its cash account in the ledger (a debit is cash in, a credit cash out), with the
# movements named by what caused them. opening + every movement = closing, to the cent.
DESK_DAILY = """
WITH desks AS (
  SELECT d.id, d.code, d.name, d.currency, d.ledger_account_id AS acc FROM payments_cashdesk d
   WHERE (%(desk)s::text IS NULL OR d.code = %(desk)s)
     AND (%(currency)s::text IS NULL OR d.currency = %(currency)s)),
mv AS (
  SELECT desks.id AS desk_id, {td} AS day,
         CASE WHEN t.debit_account_id = desks.acc THEN t.amount ELSE -t.amount END AS delta, t.id AS transfer_id
    FROM desks JOIN ledger_transfer t ON (t.debit_account_id = desks.acc OR t.credit_account_id = desks.acc)
   WHERE t.created_at < %(end)s),
book AS (
  SELECT desk_id, day, sum(delta) AS delta FROM mv WHERE day >= %(day_from)s GROUP BY 1, 2),
before AS (SELECT desk_id, sum(delta) AS opening FROM mv WHERE day < %(day_from)s GROUP BY 1),
pay AS (
  SELECT desks.id AS desk_id, {pd} AS day, count(*) AS payments, sum(p.amount) AS cash_in
    FROM payments_payment p JOIN desks ON desks.acc = p.debit_account_id
   WHERE p.received_at >= %(start)s AND p.received_at < %(end)s GROUP BY 1, 2),
rev AS (
  SELECT desks.id AS desk_id, {rvd} AS day, sum(p.amount) AS reversed
    FROM payments_payment p JOIN desks ON desks.acc = p.debit_account_id
   WHERE p.reversed_at >= %(start)s AND p.reversed_at < %(end)s GROUP BY 1, 2),
ref AS (
  SELECT r.desk_id, {fd} AS day, sum(r.amount) AS refunds
    FROM payments_refund r JOIN desks ON desks.id = r.desk_id
   WHERE r.created_at >= %(start)s AND r.created_at < %(end)s GROUP BY 1, 2),
hout AS (
  SELECT h.from_desk_id AS desk_id, {hd} AS day, sum(h.amount) AS handed_over
    FROM payments_cashhandover h JOIN desks ON desks.id = h.from_desk_id
   WHERE h.handed_at >= %(start)s AND h.handed_at < %(end)s GROUP BY 1, 2),
hin AS (
  SELECT h.to_desk_id AS desk_id, {hd} AS day, sum(h.amount) AS received
    FROM payments_cashhandover h JOIN desks ON desks.id = h.to_desk_id
   WHERE h.handed_at >= %(start)s AND h.handed_at < %(end)s GROUP BY 1, 2),
sh AS (
  SELECT s.desk_id, {sd} AS day, sum(s.opening_float) AS opening_float, count(*) AS shifts
    FROM payments_cashiershift s JOIN desks ON desks.id = s.desk_id
   WHERE s.opened_at >= %(start)s AND s.opened_at < %(end)s GROUP BY 1, 2),
disc AS (
  SELECT s.desk_id, {cd} AS day, sum(s.discrepancy) AS discrepancy
    FROM payments_cashiershift s JOIN desks ON desks.id = s.desk_id
   WHERE s.closed_at >= %(start)s AND s.closed_at < %(end)s AND s.discrepancy IS NOT NULL GROUP BY 1, 2),
days AS (
  SELECT desk_id, day FROM book UNION SELECT desk_id, day FROM pay UNION SELECT desk_id, day FROM sh
  UNION SELECT desk_id, day FROM hout UNION SELECT desk_id, day FROM hin)
SELECT desks.code AS desk, days.day, desks.currency,
       coalesce(before.opening, 0) + coalesce((SELECT sum(b2.delta) FROM book b2
                                                WHERE b2.desk_id = days.desk_id AND b2.day < days.day), 0) AS opening,
       coalesce(sh.shifts, 0) AS shifts, coalesce(sh.opening_float, 0) AS opening_float,
       coalesce(pay.payments, 0) AS payments, coalesce(pay.cash_in, 0) AS cash_in,
       coalesce(rev.reversed, 0) AS reversed, coalesce(ref.refunds, 0) AS refunds,
       coalesce(hout.handed_over, 0) AS handed_over, coalesce(hin.received, 0) AS received,
       coalesce(disc.discrepancy, 0) AS discrepancy,
       coalesce(before.opening, 0) + coalesce((SELECT sum(b2.delta) FROM book b2
                                                WHERE b2.desk_id = days.desk_id AND b2.day <= days.day), 0) AS closing
  FROM days JOIN desks ON desks.id = days.desk_id
  LEFT JOIN before ON before.desk_id = days.desk_id
  LEFT JOIN pay ON pay.desk_id = days.desk_id AND pay.day = days.day
  LEFT JOIN rev ON rev.desk_id = days.desk_id AND rev.day = days.day
  LEFT JOIN ref ON ref.desk_id = days.desk_id AND ref.day = days.day
  LEFT JOIN hout ON hout.desk_id = days.desk_id AND hout.day = days.day
  LEFT JOIN hin ON hin.desk_id = days.desk_id AND hin.day = days.day
  LEFT JOIN sh ON sh.desk_id = days.desk_id AND sh.day = days.day
  LEFT JOIN disc ON disc.desk_id = days.desk_id AND disc.day = days.day
 ORDER BY 1, 2
"""


def desk_daily(params):
    rows = sql(DESK_DAILY.format(td=day("t.created_at"), pd=day("p.received_at"), rvd=day("p.reversed_at"),
                                 fd=day("r.created_at"), hd=day("h.handed_at"), sd=day("s.opened_at"),
                                 cd=day("s.closed_at")), args(params))
    for r in rows:  # what moved the desk's cash besides the named movements (e.g. a correction)
        named = r["cash_in"] - r["reversed"] - r["refunds"] - r["handed_over"] + r["received"] + r["discrepancy"]
        r["other"] = r["closing"] - r["opening"] - named
    return rows


register(Report(
    code="cash-desk-daily", name="Cash desk daily report", group="Payments", permission=CASH,
    description="Each desk's day: cash on the books at opening, shifts opened and their opening float, cash "
                "payments taken (into the desk's cash), reversals, cash refunds, hand-overs out and in, shift discrepancies, "
                "any other movement of its cash, and the "
                "cash on the books at closing (opening plus every movement of the desk's cash account).",
    source="the desk's cash account in the ledger (opening, closing); payments, refunds, hand-overs and "
           "shifts of the desk",
    params=[DESK, CURRENCY],
    columns=[Column("desk", "Desk"), Column("day", "Day", DATE), Column("currency", "Currency"),
             Column("opening", "Opening (books)", MONEY), Column("shifts", "Shifts opened", COUNT, total=True),
             Column("opening_float", "Opening float", MONEY, total=True),
             Column("payments", "Payments", COUNT, total=True), Column("cash_in", "Cash in", MONEY, total=True),
             Column("reversed", "Reversed", MONEY, total=True), Column("refunds", "Refunds", MONEY, total=True),
             Column("handed_over", "Handed over", MONEY, total=True), Column("received", "Received", MONEY, total=True),
             Column("discrepancy", "Discrepancies", MONEY, total=True), Column("other", "Other", MONEY, total=True),
             Column("closing", "Closing (books)", MONEY)],
    query=desk_daily, chart=Chart(x="day", y="cash_in", series="desk")))

CASHIERS = """
SELECT u.username AS cashier, {pd} AS day, p.currency, count(*) AS payments, sum(p.amount) AS amount,
       count(*) FILTER (WHERE p.status = 'reversed') AS reversed, count(DISTINCT p.shift_id) AS shifts
  FROM payments_payment p JOIN identity_user u ON u.id = p.cashier_id
  LEFT JOIN payments_cashdesk d ON d.id = p.desk_id
 WHERE p.received_at >= %(start)s AND p.received_at < %(end)s
   AND (%(currency)s::text IS NULL OR p.currency = %(currency)s)
   AND (%(desk)s::text IS NULL OR d.code = %(desk)s)
 GROUP BY 1, 2, 3 ORDER BY 2, 1
"""

register(Report(
    code="cashier-daily", name="Cashier daily report", group="Payments", permission=CASH,
    description="Payments taken per cashier and day: count, amount, how many were reversed since, shifts worked.",
    source="payments with a cashier, by time received",
    params=[DESK, CURRENCY],
    columns=[Column("cashier", "Cashier"), Column("day", "Day", DATE), Column("currency", "Currency"),
             Column("payments", "Payments", COUNT, total=True), Column("amount", "Amount", MONEY, total=True),
             Column("reversed", "Reversed since", COUNT, total=True), Column("shifts", "Shifts", COUNT)],
    query=lambda p: sql(CASHIERS.format(pd=day("p.received_at")), args(p)),
    chart=Chart(x="cashier", y="amount", series="currency")))

SHIFTS = """
SELECT s.number, d.code AS desk, u.username AS cashier, s.status, s.currency, {od} AS opened, {cd} AS closed,
       s.opening_float, s.expected_cash, s.counted_cash, s.discrepancy
  FROM payments_cashiershift s JOIN payments_cashdesk d ON d.id = s.desk_id
  JOIN identity_user u ON u.id = s.cashier_id
 WHERE s.opened_at >= %(start)s AND s.opened_at < %(end)s
   AND (%(desk)s::text IS NULL OR d.code = %(desk)s)
   AND (%(currency)s::text IS NULL OR s.currency = %(currency)s)
 ORDER BY s.opened_at
"""

register(Report(
    code="cashier-shifts", name="Cashier shifts", group="Payments", permission=CASH,
    description="Shifts opened in the period: desk, cashier, opening float, expected and counted cash at "
                "closing and the discrepancy (counted − expected; negative is a shortage).",
    source="cashier shifts, by time opened",
    params=[DESK, CURRENCY],
    columns=[Column("number", "Shift"), Column("desk", "Desk"), Column("cashier", "Cashier"),
             Column("status", "Status", labels=choices_of("payments.CashierShift", "status")),
             Column("currency", "Currency"), Column("opened", "Opened", DATE), Column("closed", "Closed", DATE),
             Column("opening_float", "Opening float", MONEY, total=True),
             Column("expected_cash", "Expected", MONEY, total=True), Column("counted_cash", "Counted", MONEY, total=True),
             Column("discrepancy", "Discrepancy", MONEY, total=True)],
    query=lambda p: sql(SHIFTS.format(od=day("s.opened_at"), cd=day("s.closed_at")), args(p))))

HANDOVERS = """
SELECT h.number, {hd} AS day, f.code AS from_desk, h.destination, coalesce(t.code, '') AS to_desk, h.currency,
       h.amount, h.handed_by_label AS handed_by, h.bank_reference
  FROM payments_cashhandover h JOIN payments_cashdesk f ON f.id = h.from_desk_id
  LEFT JOIN payments_cashdesk t ON t.id = h.to_desk_id
 WHERE h.handed_at >= %(start)s AND h.handed_at < %(end)s
   AND (%(desk)s::text IS NULL OR f.code = %(desk)s OR t.code = %(desk)s)
   AND (%(currency)s::text IS NULL OR h.currency = %(currency)s)
 ORDER BY h.handed_at
"""

register(Report(
    code="cash-handovers", name="Cash hand-overs", group="Payments", permission=CASH,
    description="Cash handed over from a desk to another desk or to the bank in the period.",
    source="cash hand-overs, by time handed over",
    params=[DESK, CURRENCY],
    columns=[Column("number", "Hand-over"), Column("day", "Day", DATE), Column("from_desk", "From desk"),
             Column("destination", "To", labels=choices_of("payments.CashHandover", "destination")), Column("to_desk", "To desk"), Column("currency", "Currency"),
             Column("amount", "Amount", MONEY, total=True), Column("handed_by", "Handed over by"),
             Column("bank_reference", "Bank reference")],
    query=lambda p: sql(HANDOVERS.format(hd=day("h.handed_at")), args(p))))

REFUNDS = """
SELECT {rd} AS day, r.destination, r.currency, count(*) AS refunds, sum(r.amount) AS amount
  FROM payments_refund r
 WHERE r.created_at >= %(start)s AND r.created_at < %(end)s
   AND (%(currency)s::text IS NULL OR r.currency = %(currency)s)
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""

register(Report(
    code="refunds", name="Refunds", group="Payments", permission=CASH,
    description="Money paid back per day: to the original channel or in cash at a desk.",
    source="refunds, by time made",
    params=[CURRENCY],
    columns=[Column("day", "Day", DATE), Column("destination", "Paid back to", labels=choices_of("payments.Refund", "destination")), Column("currency", "Currency"),
             Column("refunds", "Refunds", COUNT, total=True), Column("amount", "Amount", MONEY, total=True)],
    query=lambda p: sql(REFUNDS.format(rd=day("r.created_at")), args(p))))

VOUCHERS = """
WITH sold AS (
  SELECT {sd} AS day, b.currency, count(*) AS batches, sum(b.count) AS cards_sold, sum(b.count * b.nominal) AS sold_value
    FROM payments_voucherbatch b
   WHERE b.activated_at >= %(start)s AND b.activated_at < %(end)s
     AND (%(currency)s::text IS NULL OR b.currency = %(currency)s)
   GROUP BY 1, 2),
red AS (
  SELECT {rd} AS day, b.currency, count(*) AS redeemed, sum(b.nominal) AS redeemed_value
    FROM payments_voucher v JOIN payments_voucherbatch b ON b.id = v.batch_id
   WHERE v.redeemed_at >= %(start)s AND v.redeemed_at < %(end)s
     AND (%(currency)s::text IS NULL OR b.currency = %(currency)s)
   GROUP BY 1, 2)
SELECT coalesce(sold.day, red.day) AS day, coalesce(sold.currency, red.currency) AS currency,
       coalesce(sold.cards_sold, 0) AS cards_sold, coalesce(sold.sold_value, 0) AS sold_value,
       coalesce(red.redeemed, 0) AS redeemed, coalesce(red.redeemed_value, 0) AS redeemed_value
  FROM sold FULL JOIN red ON red.day = sold.day AND red.currency = sold.currency
 ORDER BY 1, 2
"""

register(Report(
    code="vouchers", name="Vouchers sold and redeemed", group="Payments", permission=CASH,
    description="Scratch cards sold (batches activated: cards and their value) and redeemed per day.",
    source="voucher batches by time activated; vouchers by time redeemed",
    params=[CURRENCY],
    columns=[Column("day", "Day", DATE), Column("currency", "Currency"),
             Column("cards_sold", "Cards sold", COUNT, total=True), Column("sold_value", "Value sold", MONEY, total=True),
             Column("redeemed", "Redeemed", COUNT, total=True),
             Column("redeemed_value", "Value redeemed", MONEY, total=True)],
    query=lambda p: sql(VOUCHERS.format(sd=day("b.activated_at"), rd=day("v.redeemed_at")), args(p)),
    chart=Chart(x="day", y="redeemed", kind="bar")))
