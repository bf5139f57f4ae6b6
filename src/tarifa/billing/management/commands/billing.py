"""`tarifa billing charge | run | check | cycles | create-cycle | assign | invoice | issue | credit | pdf | dunning`.

`charge` is subscriptions' daily fee charging (`tarifa.subscriptions.daily.run`); the rest
is the billing app's.
"""

import datetime as dt
import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError


class ProgressBar:
    """A progress bar on stderr: cycle, bar, percent, accounts and rate."""

    def __init__(self, stream, enabled=True):
        self.stream, self.enabled, self.started = stream, enabled, time.monotonic()
        # A management command's OutputWrapper ends every write with a newline unless told not to.
        self.write = (lambda text: stream.write(text, ending="")) if hasattr(stream, "ending") else stream.write
        self.last = 0.0

    def __call__(self, cycle, done, total):
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        width = 30
        fill = int(width * done / total) if total else width
        rate = done / (now - self.started) if now > self.started else 0
        self.write(f"\r{cycle.code} [{'#' * fill}{'.' * (width - fill)}] {100 * done // max(total, 1):3d}%"
                          f" {done}/{total} accounts {rate:,.0f}/s")
        if done >= total:
            self.write("\n")
        self.stream.flush()


class Command(BaseCommand):
    help = ("Billing. charge: fees due up to a day; run: a bill run for a period; check: revenue assurance; "
            "assign: put accounts in a cycle; invoice: one account; dunning: advance the collections ladder.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)
        charge = sub.add_parser("charge", help="Charge every fee due up to --as-of (default: today).")
        charge.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD")
        charge.add_argument("--batch-accounts", type=int, default=None, help="Accounts per transaction.")
        charge.add_argument("--actor", default="system:cli")
        charge.add_argument("--dry-run", action="store_true",
                            help="Preview: what would be charged and suspended; nothing is written.")

        run = sub.add_parser("run", help="Invoice every billable account of a period (all cycles, or --cycle).")
        run.add_argument("--period", required=True, help="YYYY-MM")
        run.add_argument("--cycle", help="Bill cycle code (default: every cycle).")
        run.add_argument("--dry-run", action="store_true", help="Compute everything, write nothing.")
        run.add_argument("--jobs", type=int, default=None, help="Processes (default: one per core).")
        run.add_argument("--enqueue", action="store_true", help="Hand the run to the running workers and return.")
        run.add_argument("--batch-size", type=int, default=None, help="Accounts per transaction.")
        run.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        run.add_argument("--actor", default="system:cli")

        check = sub.add_parser("check", help="Revenue assurance for a period; exits 1 naming the offenders.")
        check.add_argument("--period", required=True, help="YYYY-MM")
        check.add_argument("--cycle", help="Bill cycle code (default: every cycle).")

        sub.add_parser("cycles", help="List the bill cycles (JSON) with their accounts.")
        cyc = sub.add_parser("create-cycle", help="Create a bill cycle.")
        cyc.add_argument("code")
        cyc.add_argument("--name", required=True)
        cyc.add_argument("--day", type=int, default=1, help="First day of the period (1-28).")
        cyc.add_argument("--invoice-offset", type=int, default=1, help="Invoice date, days after the period end.")
        cyc.add_argument("--terms", type=int, default=14, help="Payment terms: due N days after the invoice date.")
        cyc.add_argument("--rounding", choices=["line", "invoice"], default="line")
        cyc.add_argument("--series", default="I", help="Invoice number series (1-4 capital letters).")
        cyc.add_argument("--drafts", action="store_true", help="Bill runs leave drafts for review (no auto issue).")
        cyc.add_argument("--actor", default="system:cli")

        assign = sub.add_parser("assign", help="Put every active account without a cycle into --cycle.")
        assign.add_argument("--cycle", required=True)
        assign.add_argument("--payment-mode", choices=["prepaid", "postpaid"], default=None)
        assign.add_argument("--actor", default="system:cli")

        invoice = sub.add_parser("invoice", help="Invoice one account for a period (or --dry-run to preview).")
        invoice.add_argument("account", help="Billing account number")
        invoice.add_argument("--period", required=True)
        invoice.add_argument("--dry-run", action="store_true")
        invoice.add_argument("--actor", default="system:cli")

        now = sub.add_parser("bill-now", help="Invoice one account now: interim (what is due so far) or --final.")
        now.add_argument("account", help="Billing account number")
        now.add_argument("--final", action="store_true", help="Everything not yet invoiced (the customer leaves).")
        now.add_argument("--reason", default="")
        now.add_argument("--actor", default="system:cli")

        credit = sub.add_parser("credit", help="Issue a credit note for an invoice (full unless --amount).")
        credit.add_argument("invoice", help="Invoice number, e.g. HQ-I0000001")
        credit.add_argument("--amount", help="Gross amount to credit (default: all that is still creditable).")
        credit.add_argument("--reason", required=True)
        credit.add_argument("--actor", default="system:cli")

        issue = sub.add_parser("issue", help="Issue an account's draft invoice for a period (number, book, allocate).")
        issue.add_argument("account", help="Billing account number")
        issue.add_argument("--period", required=True)
        issue.add_argument("--actor", default="system:cli")

        pdf = sub.add_parser("pdf", help="Write an invoice's or credit note's PDF (rendered once, then kept).")
        pdf.add_argument("invoice", help="Invoice or credit note number")
        pdf.add_argument("--out", help="File to write (default: NUMBER.pdf in the current directory).")

        dunning = sub.add_parser("dunning", help="Mark overdue invoices and apply the next dunning steps.")
        dunning.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD")
        dunning.add_argument("--actor", default="system:cli")

    def handle(self, *args, **opts):
        try:
            return getattr(self, f"do_{opts['subcommand'].replace('-', '_')}")(**opts)
        except DomainError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from None

    def _day(self, value):
        try:
            return dt.date.fromisoformat(value) if value else today()
        except ValueError:
            raise CommandError(f"--as-of {value!r}: expected YYYY-MM-DD") from None

    def do_charge(self, **opts):
        from tarifa.subscriptions.daily import BATCH_ACCOUNTS, preview, run

        if opts["dry_run"]:
            self.stdout.write(json.dumps(preview(as_of=self._day(opts["as_of"]), actor=opts["actor"]), indent=2))
            return
        result = run(as_of=self._day(opts["as_of"]), actor=opts["actor"],
                     batch_accounts=opts["batch_accounts"] or BATCH_ACCOUNTS,
                     log=lambda line: self.stderr.write(line) if opts["verbosity"] > 1 else None)
        self.stdout.write(json.dumps(result, indent=2))

    def do_run(self, **opts):
        from tarifa.billing import billrun

        if opts["jobs"] is not None and opts["jobs"] < 1:
            raise CommandError("--jobs is at least 1")
        if opts["enqueue"]:
            refused = []
            if opts["cycle"]:
                runs = billrun.enqueue(actor=opts["actor"], period=opts["period"], cycle=opts["cycle"],
                                       dry_run=opts["dry_run"], jobs=opts["jobs"])
            else:  # every live cycle; a cycle refused (run in progress, …) is reported, the others queued
                queued = billrun.enqueue_all(actor=opts["actor"], period=opts["period"], dry_run=opts["dry_run"],
                                             jobs=opts["jobs"])
                runs, refused = queued.runs, queued.refused
            self.stdout.write(json.dumps({"queued": [{"run": str(r.pk), "cycle": r.cycle.code, "period": r.period}
                                                     for r in runs], "refused": refused}, indent=2))
            return
        bar = ProgressBar(self.stderr, enabled=not opts["no_progress"] and opts["verbosity"] > 0)
        summary = billrun.run_period(actor=opts["actor"], period=opts["period"], cycle=opts["cycle"],
                                     dry_run=opts["dry_run"], jobs=opts["jobs"], progress=bar,
                                     batch_size=opts["batch_size"])
        self.stdout.write(json.dumps(summary, indent=2, default=str))

    def do_check(self, **opts):
        from tarifa.billing.check import check

        result = check(period=opts["period"], cycle=opts["cycle"])
        self.stdout.write(json.dumps(result, indent=2, default=str))
        if not result["ok"]:
            for p in result["problems"]:
                self.stderr.write(f"{p['check']}: {p['subject']}: {p['detail']}")
            sys.exit(1)

    def do_cycles(self, **opts):
        from django.db.models import Count

        from tarifa.billing.models import BillCycle

        rows = BillCycle.objects.filter(archived_at__isnull=True).annotate(n=Count("assignments"))
        self.stdout.write(json.dumps([{"code": c.code, "name": c.name, "day_of_month": c.day_of_month,
                                       "invoice_date_offset_days": c.invoice_date_offset_days,
                                       "payment_terms_days": c.payment_terms_days, "rounding": c.rounding,
                                       "series": c.series, "auto_issue": c.auto_issue, "accounts": c.n}
                                      for c in rows.order_by("day_of_month", "code")], indent=2))

    def do_create_cycle(self, **opts):
        from tarifa.billing import services

        cycle = services.create_cycle(actor=opts["actor"], code=opts["code"], name=opts["name"],
                                      day_of_month=opts["day"], invoice_date_offset_days=opts["invoice_offset"],
                                      payment_terms_days=opts["terms"], rounding=opts["rounding"],
                                      series=opts["series"], auto_issue=not opts["drafts"])
        self.stdout.write(json.dumps({"cycle": cycle.code, "id": str(cycle.pk)}))

    def do_assign(self, **opts):
        from tarifa.billing import services
        from tarifa.billing.billrun import _cycle

        n = services.assign_accounts_bulk(actor=opts["actor"], cycle=_cycle(opts["cycle"]),
                                          payment_mode=opts["payment_mode"])
        self.stdout.write(json.dumps({"assigned": n, "cycle": opts["cycle"]}))

    def do_invoice(self, **opts):
        from tarifa.billing import services
        from tarifa.ledger.selectors import billing_account_by_number

        account = billing_account_by_number(opts["account"])
        if account is None:
            raise CommandError(f"No billing account {opts['account']!r}.")
        if opts["dry_run"]:
            draft, dates = services.preview_invoice(billing_account=account, period=opts["period"])
            self.stdout.write(json.dumps({"lines": [{"kind": ln.kind, "description": ln.description,
                                                     "amount": ln.amount, "net": ln.net, "tax": ln.tax,
                                                     "total": ln.total} for ln in draft.lines],
                                          "subtotal": draft.subtotal, "tax": draft.tax_total, "total": draft.total,
                                          **dates}, indent=2, default=str))
            return
        invoice = services.generate_invoice(actor=opts["actor"], billing_account=account, period=opts["period"])
        self.stdout.write(json.dumps({"invoice": str(invoice.pk), "number": invoice.number, "state": invoice.state,
                                      "total": invoice.total, "existing": invoice.existing}, default=str))

    def do_bill_now(self, **opts):
        from tarifa.billing import services
        from tarifa.ledger.selectors import billing_account_by_number

        account = billing_account_by_number(opts["account"])
        if account is None:
            raise CommandError(f"No billing account {opts['account']!r}.")
        invoice = services.bill_now(actor=opts["actor"], billing_account=account,
                                    purpose="final" if opts["final"] else "interim", reason=opts["reason"])
        self.stdout.write(json.dumps({"invoice": str(invoice.pk), "number": invoice.number, "purpose": invoice.purpose,
                                      "state": invoice.state, "period_start": invoice.period_start,
                                      "period_end": invoice.period_end, "total": invoice.total}, default=str))

    def _invoice(self, number):
        from tarifa.billing.models import Invoice

        invoice = Invoice.objects.select_related("billing_account").filter(number=number).first()
        if invoice is None:
            raise CommandError(f"No invoice {number!r}.")
        return invoice

    def do_credit(self, **opts):
        from tarifa.billing import services

        invoice = self._invoice(opts["invoice"])
        note = services.credit_invoice(invoice, actor=opts["actor"], amount=opts["amount"], reason=opts["reason"])
        invoice.refresh_from_db()
        self.stdout.write(json.dumps({"credit_note": note.number, "credits": invoice.number, "total": note.total,
                                      "tax": note.tax_total, "invoice_state": invoice.state,
                                      "creditable": invoice.creditable}, indent=2, default=str))

    def do_issue(self, **opts):
        from tarifa.billing import services
        from tarifa.billing.models import Invoice
        from tarifa.ledger.selectors import billing_account_by_number

        account = billing_account_by_number(opts["account"])
        draft = account and Invoice.objects.filter(billing_account=account, period=services.parse_period(
            opts["period"]), kind="invoice").first()
        if not draft:
            raise CommandError(f"No invoice of {opts['account']!r} for {opts['period']}.")
        invoice = services.issue_invoice(draft, actor=opts["actor"])
        self.stdout.write(json.dumps({"invoice": str(invoice.pk), "number": invoice.number, "state": invoice.state,
                                      "total": invoice.total}, default=str))

    def do_pdf(self, **opts):
        from tarifa.billing.documents import invoice_pdf

        invoice = self._invoice(opts["invoice"])
        path = opts["out"] or f"{invoice.number}.pdf"
        data = invoice_pdf(invoice)
        with open(path, "wb") as fh:
            fh.write(data)
        self.stdout.write(json.dumps({"invoice": invoice.number, "file": path, "bytes": len(data)}))

    def do_dunning(self, **opts):
        from tarifa.billing import dunning, services

        day = self._day(opts["as_of"])
        overdue = services.mark_overdue(as_of=day)
        result = dunning.run(as_of=day, actor=opts["actor"])
        self.stdout.write(json.dumps({"overdue": overdue, **result}, indent=2, default=str))
