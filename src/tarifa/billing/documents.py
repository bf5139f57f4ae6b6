"""Documents: invoice / credit note PDFs, statements of account and payment receipts (WeasyPrint).

The HTML is a Django template: the operator's `DocumentTemplate` for the kind and the
customer's language (else English), falling back to the shipped file
`billing/documents/<kind>.html`. Rendered lazily: an invoice's PDF is made on its first
download or e-mail and then kept (`InvoiceDocument`), so an issued invoice's document
never changes even if the template does later. The operator's name, address, legal
details and logo come from `settings.TARIFA_OPERATOR`.
"""

import base64
import mimetypes
import types
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.template import Context, Template
from django.template.loader import get_template

from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import DomainError

from .models import DocumentTemplate, Invoice, InvoiceDocument

DEFAULT_OPERATOR = {
    "name": "Tarifa Telecom", "address": "1 Network Street, 10001 Example City", "tax_id": "VAT EX-000000000",
    "registration": "Company register 000000", "bank": "Example Bank", "iban": "EX00 0000 0000 0000 0000",
    "email": "billing@example.net", "phone": "+1 555 0100", "website": "https://example.net", "logo": "",
}
SHIPPED_LOGO = Path(__file__).parent / "templates" / "billing" / "documents" / "logo.svg"


def operator() -> dict:
    """The operator's legal details for documents, with the logo as a data URI."""
    data = {**DEFAULT_OPERATOR, **getattr(settings, "TARIFA_OPERATOR", {})}
    logo = data.get("logo") or str(SHIPPED_LOGO)
    if logo and not logo.startswith("data:"):
        path = Path(logo)
        if path.is_file():
            mime = mimetypes.guess_type(path.name)[0] or "image/png"
            data["logo"] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
        else:
            data["logo"] = ""
    return data


def _source(kind: str, language: str) -> tuple[str, object]:
    qs = DocumentTemplate.objects.filter(kind=kind, archived_at__isnull=True)
    row = qs.filter(language=language).first() or qs.filter(language="en").first()
    if row is not None:
        return f"db:{row.pk}", Template(row.body)
    return f"file:billing/documents/{kind}.html", get_template(f"billing/documents/{kind}.html")


def render_html(kind: str, context: dict, language: str = "en") -> tuple[str, str]:
    """(template name, HTML). A template that fails is a clear `template_error`."""
    name = "?"
    try:
        name, template = _source(kind, language)
        ctx = {"operator": operator(), "today": today(), **context}
        html = template.render(Context(ctx)) if isinstance(template, Template) else template.render(ctx)
    except DomainError:
        raise
    except Exception as exc:  # noqa: BLE001 — any template failure is reported the same way
        raise DomainError(f"The {kind} template ({name}) failed to render: {type(exc).__name__}: {exc}",
                          code="template_error", status=422) from exc
    return name, html


def html_to_pdf(html: str) -> bytes:
    import logging

    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per rendering step
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: Pango/Cairo libraries missing
        raise DomainError(f"PDF rendering is not available: {exc}", code="pdf_unavailable", status=503) from exc
    try:
        return HTML(string=html, base_url=str(Path(__file__).parent)).write_pdf()
    except Exception as exc:  # noqa: BLE001
        raise DomainError(f"The document failed to render as PDF: {exc}", code="template_error", status=422) from exc


def invoice_context(invoice: Invoice) -> dict:
    lines = list(invoice.lines.order_by("position"))
    for ln in lines:
        ln.tax_list = [{**t, "rate": Decimal(t["rate"]), "base": Decimal(t["base"]), "tax": Decimal(t["tax"])}
                       for t in ln.taxes]
    summary = [{**t, "rate": Decimal(t["rate"]), "base": Decimal(t["base"]), "tax": Decimal(t["tax"])}
               for t in invoice.tax_summary]
    account = invoice.billing_account
    return {"invoice": invoice, "lines": lines, "tax_summary": summary, "customer": invoice.customer,
            "account": account, "credited_invoice": invoice.credited_invoice,
            "is_credit_note": invoice.kind == Invoice.Kind.CREDIT_NOTE, "draft": invoice.is_draft,
            "title": "Credit note" if invoice.kind == Invoice.Kind.CREDIT_NOTE else "Invoice"}


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's PDF: rendered on first use and kept; drafts are rendered each time (marked DRAFT)."""
    stored = InvoiceDocument.objects.filter(invoice=invoice).first()
    if stored is not None:
        return bytes(stored.pdf)
    name, html = render_html("invoice", invoice_context(invoice), invoice.language)
    pdf = html_to_pdf(html)
    if not invoice.is_draft:
        with transaction.atomic():
            InvoiceDocument.objects.get_or_create(invoice=invoice, defaults={"pdf": pdf, "template": name[:100]})
    return pdf


def statement_context(account, start, end) -> dict:
    from tarifa.ledger.models import Transfer

    lid = account.ledger_account_id
    rows = (Transfer.objects.filter(created_at__date__gte=start, created_at__date__lte=end)
            .filter(debit_account_id=lid) | Transfer.objects.filter(created_at__date__gte=start,
                                                                     created_at__date__lte=end, credit_account_id=lid))
    before = (Transfer.objects.filter(created_at__date__lt=start, credit_account_id=lid).values_list("amount", flat=True),
              Transfer.objects.filter(created_at__date__lt=start, debit_account_id=lid).values_list("amount", flat=True))
    opening = sum(before[0], Decimal(0)) - sum(before[1], Decimal(0))
    entries, running = [], opening
    for t in rows.order_by("created_at", "id"):
        signed = t.amount if t.credit_account_id == lid else -t.amount
        running += signed
        entries.append({"at": t.created_at, "kind": t.get_kind_display(), "memo": t.memo or t.tags.get("fee", ""),
                        "amount": signed, "balance": running})
    invoices = account.invoices.filter(invoice_date__gte=start, invoice_date__lte=end).exclude(state="draft")
    return {"account": account, "customer": account.customer, "start": start, "end": end, "opening": opening,
            "closing": running, "entries": entries, "invoices": invoices.order_by("invoice_date", "number")}


def statement_pdf(account, start, end) -> bytes:
    _name, html = render_html("statement", statement_context(account, start, end), account.customer.language)
    return html_to_pdf(html)


def receipt_pdf(transfer) -> bytes:
    from tarifa.ledger.models import BillingAccount

    account = BillingAccount.objects.select_related("customer").filter(ledger_account_id=transfer.credit_account_id).first()
    if account is None or transfer.kind != "payment":
        raise DomainError("A receipt is for a payment to a customer's account.", code="not_a_payment", status=409)
    allocations = transfer_allocations(transfer)
    _name, html = render_html("receipt", {"payment": transfer, "account": account, "customer": account.customer,
                                          "allocations": allocations, "issued_at": now()}, account.customer.language)
    return html_to_pdf(html)


def transfer_allocations(transfer):
    from .models import Allocation

    return list(Allocation.objects.filter(transfer=transfer).select_related("invoice").order_by("created_at"))


def _sample(kind: str) -> dict:
    ns = types.SimpleNamespace
    customer = ns(display_name="Sample Customer Ltd", legal_name="Sample Customer Ltd", tax_id="TAX1", number="HQ-C1",
                  language="en", addresses=None)
    account = ns(number="HQ-A0000001", currency="EUR", customer=customer)
    line = ns(position=1, kind="recurring_fee", description="Sample line", period_start=today(), period_end=today(),
              quantity=Decimal(1), unit="", free_units=Decimal(0), destination="", amount=Decimal("10"),
              net=Decimal("8.33"), tax=Decimal("1.67"), total=Decimal("10"), tax_list=[], get_kind_display=lambda: "Fee")
    invoice = ns(number="HQ-I0000001", kind="invoice", period="2026-01", period_start=today(), period_end=today(),
                 invoice_date=today(), due_date=today(), currency="EUR", subtotal=Decimal("8.33"),
                 tax_total=Decimal("1.67"), total=Decimal("10"), paid_amount=Decimal(0), credited_amount=Decimal(0),
                 outstanding=Decimal("10"), rounding_note="Sample rounding", reason="", state="issued",
                 get_state_display=lambda: "Issued", billing_account=account, customer=customer)
    if kind == "invoice":
        return {"invoice": invoice, "lines": [line], "tax_summary": [], "customer": customer, "account": account,
                "credited_invoice": None, "is_credit_note": False, "draft": False, "title": "Invoice"}
    if kind == "statement":
        return {"account": account, "customer": customer, "start": today(), "end": today(), "opening": Decimal(0),
                "closing": Decimal(0), "entries": [], "invoices": []}
    payment = ns(amount=Decimal("10"), currency="EUR", created_at=now(), idempotency_key="sample", id="sample",
                 pk="sample", memo="")
    return {"payment": payment, "account": account, "customer": customer, "allocations": [], "issued_at": now()}


def check_template(kind: str, body: str) -> None:
    """Refuse an operator's template that does not render on sample data (`template_error`)."""
    try:
        Template(body).render(Context({"operator": operator(), "today": today(), **_sample(kind)}))
    except Exception as exc:  # noqa: BLE001
        raise DomainError(f"The template failed to render: {type(exc).__name__}: {exc}", code="template_error",
                          status=422, fields={"body": [str(exc)]}) from exc
