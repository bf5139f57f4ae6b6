"""Documents: invoice / credit note PDFs, statements of account and payment receipts (WeasyPrint).

The HTML is a Django template: the operator's `DocumentTemplate` for the kind and the
customer's language (else English), falling back to the shipped file
`billing/documents/<kind>.html`. Operators' templates render in the sandbox
(`tarifa.kernel.sandbox`: no `{% load %}`/`{% include %}`/…, plain data only), and every
template gets the same plain dicts of the document's data, never model objects. The PDF
renderer fetches nothing but `data:` URLs and the project's own static files
(`url_fetcher`): no `file:` path elsewhere, no `http:`. Rendered lazily: an invoice's PDF is made on its first
download or e-mail and then kept (`InvoiceDocument`), so an issued invoice's document
never changes even if the template does later. The operator's name, address, legal
details and logo come from `settings.TARIFA_OPERATOR`.
"""

import base64
import logging
import mimetypes
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import transaction
from django.template.loader import get_template
from django.utils.safestring import mark_safe

from tarifa.kernel import sandbox
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


log = logging.getLogger(__name__)

# What a template sees of each record (plain dicts, see tarifa.kernel.sandbox; `x_display` is
# the label of choice field `x`). docs/billing.md lists them for template authors.
CUSTOMER_FIELDS = ["number", "kind", "display_name", "first_name", "last_name", "legal_name", "tax_id",
                   "registration_number", "legal_address", "language"]
ACCOUNT_FIELDS = ["number", "currency", "payment_mode", "payment_mode_display", "status", "status_display"]
INVOICE_FIELDS = ["number", "kind", "kind_display", "purpose", "purpose_display", "state", "state_display", "period",
                  "period_start",
                  "period_end", "invoice_date", "due_date", "currency", "subtotal", "tax_total", "total",
                  "paid_amount", "credited_amount", "outstanding", "rounding_note", "reason", "language"]
LINE_FIELDS = ["position", "kind", "kind_display", "description", "period_start", "period_end", "quantity", "unit",
               "free_units", "destination", "amount", "net", "tax", "total"]
PAYMENT_FIELDS = ["id", "pk", "amount", "currency", "created_at", "memo", "kind"]
ADDRESS_FIELDS = ["kind", "line1", "line2", "city", "postcode", "region", "country"]


def _taxes(rows) -> list[dict]:
    return [{**t, "rate": Decimal(t["rate"]), "base": Decimal(t["base"]), "tax": Decimal(t["tax"])} for t in rows]


def customer_data(customer) -> dict | None:
    data = sandbox.record(customer, CUSTOMER_FIELDS)
    if data is not None and getattr(customer, "pk", None):
        data["addresses"] = [sandbox.record(a, ADDRESS_FIELDS)
                             for a in customer.addresses.filter(archived_at__isnull=True).order_by("created_at")]
    return data


def _source(kind: str, language: str) -> tuple[str, object]:
    qs = DocumentTemplate.objects.filter(kind=kind, archived_at__isnull=True)
    row = qs.filter(language=language).first() or qs.filter(language="en").first()
    if row is not None:
        return f"db:{row.pk}", sandbox.compile_template(row.body)
    return f"file:billing/documents/{kind}.html", get_template(f"billing/documents/{kind}.html")


def _common(context: dict) -> dict:
    ctx = {"operator": operator(), "today": today(), **context}
    # The shipped style sheet, for operators' templates (which may not {% include %} it).
    ctx["style"] = mark_safe(get_template("billing/documents/_style.html").render(sandbox.plain(ctx)))  # noqa: S308
    return sandbox.plain(ctx)


def render_html(kind: str, context: dict, language: str = "en") -> tuple[str, str]:
    """(template name, HTML). `context` is plain data (dicts, lists, values: `sandbox.plain`);
    a template that fails is a clear `template_error`."""
    name = "?"
    try:
        name, template = _source(kind, language)
        ctx = _common(context)
        html = sandbox.render(template, ctx) if name.startswith("db:") else template.render(ctx)
    except DomainError:
        raise
    except Exception as exc:  # noqa: BLE001 — any template failure is reported the same way
        raise DomainError(f"The {kind} template ({name}) failed to render: {type(exc).__name__}: {exc}",
                          code="template_error", status=422) from exc
    return name, html


def static_roots() -> list[Path]:
    """The directories whose files a document may embed: the project's static files."""
    from django.contrib.staticfiles import finders

    roots = [Path(settings.STATIC_ROOT)] if getattr(settings, "STATIC_ROOT", None) else []
    for finder in finders.get_finders():
        for storage in getattr(finder, "storages", {}).values():
            location = getattr(storage, "location", None)
            if location:
                roots.append(Path(location))
    return [r.resolve() for r in roots if r.is_dir()]


class ResourceRefused(ValueError):
    pass


def allowed_resource(url: str) -> Path | None:
    """What a document may embed: None for a `data:` URL, the file for a static file; anything
    else (another file, `http:`, `https:`, `ftp:`, …) raises `ResourceRefused` and is logged, so a
    template can neither attach server files nor make the server call an internal address."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "data":
        return None
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        path = Path(unquote(parts.path)).resolve()
        if path.is_file() and any(path.is_relative_to(root) for root in static_roots()):
            return path
    log.warning("document rendering: refused to fetch %s (only data: URLs and static files)", url[:300])
    raise ResourceRefused(f"Refused to fetch {url[:100]}: documents embed only data: URLs and static files.")


def url_fetcher():
    """WeasyPrint's URL fetcher, limited to `allowed_resource`."""
    from weasyprint import urls

    if hasattr(urls, "URLFetcher"):  # the fetcher class API of current WeasyPrint
        class Fetcher(urls.URLFetcher):
            def fetch(self, url, headers=None):
                path = allowed_resource(url)
                if path is None:
                    return super().fetch(url, headers)  # data: — decoded by urllib's DataHandler
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return urls.URLFetcherResponse(path.as_uri(), body=path.read_bytes(), headers={"Content-Type": mime})

        return Fetcher(allowed_protocols=["data", "file"], allow_redirects=False)

    def fetch(url, timeout=10, ssl_context=None):  # older WeasyPrint: a function returning a dict
        path = allowed_resource(url)
        if path is None:
            return urls.default_url_fetcher(url, timeout=timeout, ssl_context=ssl_context)
        return {"string": path.read_bytes(), "mime_type": mimetypes.guess_type(path.name)[0],
                "redirected_url": path.as_uri(), "filename": path.name}

    return fetch


def html_to_pdf(html: str) -> bytes:
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)  # one INFO line per rendering step
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: Pango/Cairo libraries missing
        raise DomainError(f"PDF rendering is not available: {exc}", code="pdf_unavailable", status=503) from exc
    roots = static_roots()
    base = roots[0].as_uri() + "/" if roots else None  # relative URLs resolve among the static files
    try:
        return HTML(string=html, base_url=base, url_fetcher=url_fetcher()).write_pdf()
    except Exception as exc:  # noqa: BLE001
        raise DomainError(f"The document failed to render as PDF: {exc}", code="template_error", status=422) from exc


def invoice_context(invoice: Invoice) -> dict:
    """The invoice's data for its template, as plain dicts."""
    lines = []
    for ln in invoice.lines.order_by("position"):
        data = sandbox.record(ln, LINE_FIELDS)
        data["tax_list"] = _taxes(ln.taxes)
        lines.append(data)
    credited = invoice.credited_invoice
    is_credit_note = invoice.kind == Invoice.Kind.CREDIT_NOTE
    summary = _taxes(invoice.tax_summary)
    credit = None
    if is_credit_note:  # what is credited, as positive amounts (the credit note's own wording)
        for ln in lines:
            ln.update(net_credited=-ln["net"], tax_credited=-ln["tax"], total_credited=-ln["total"])
            for t in ln["tax_list"]:
                t["tax_credited"] = -t["tax"]
        for t in summary:
            t.update(base_credited=-t["base"], tax_credited=-t["tax"])
        credit = {"net": -invoice.subtotal, "tax": -invoice.tax_total, "total": -invoice.total}
    titles = {"interim": "Interim invoice", "final": "Final invoice"}
    return {"invoice": {**sandbox.record(invoice, INVOICE_FIELDS), "is_draft": invoice.is_draft},
            "lines": lines, "tax_summary": summary,
            "customer": customer_data(invoice.customer),
            "account": sandbox.record(invoice.billing_account, ACCOUNT_FIELDS),
            "credited_invoice": sandbox.record(credited, INVOICE_FIELDS), "is_credit_note": is_credit_note,
            "credit": credit, "draft": invoice.is_draft,
            "title": "Credit note" if is_credit_note else titles.get(invoice.purpose, "Invoice")}


def document_kind(invoice: Invoice) -> str:
    """A credit note has its own document template (`credit_note`), an invoice `invoice`."""
    return "credit_note" if invoice.kind == Invoice.Kind.CREDIT_NOTE else "invoice"


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's PDF as issued: rendered once when it is issued (billing's handler of
    `billing.invoice_issued` / `billing.credit_note_issued`) and stored; every download serves the
    stored one. Drafts are rendered each time (marked DRAFT). The document carries no payment
    state (paid, credited, due now): that is the statement's."""
    stored = InvoiceDocument.objects.filter(invoice=invoice).first()
    if stored is not None:
        return bytes(stored.pdf)
    name, html = render_html(document_kind(invoice), invoice_context(invoice), invoice.language)
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
    return {"account": sandbox.record(account, ACCOUNT_FIELDS), "customer": customer_data(account.customer),
            "start": start, "end": end, "opening": opening, "closing": running, "entries": entries,
            "invoices": [sandbox.record(i, INVOICE_FIELDS) for i in invoices.order_by("invoice_date", "number")]}


def statement_pdf(account, start, end) -> bytes:
    _name, html = render_html("statement", statement_context(account, start, end), account.customer.language)
    return html_to_pdf(html)


def receipt_pdf(transfer) -> bytes:
    from tarifa.ledger.models import BillingAccount

    account = BillingAccount.objects.select_related("customer").filter(ledger_account_id=transfer.credit_account_id).first()
    if account is None or transfer.kind != "payment":
        raise DomainError("A receipt is for a payment to a customer's account.", code="not_a_payment", status=409)
    allocations = [{"amount": a.amount, "created_at": a.created_at,
                    "invoice": sandbox.record(a.invoice, INVOICE_FIELDS)} for a in transfer_allocations(transfer)]
    _name, html = render_html("receipt", {"payment": sandbox.record(transfer, PAYMENT_FIELDS),
                                          "account": sandbox.record(account, ACCOUNT_FIELDS),
                                          "customer": customer_data(account.customer),
                                          "allocations": allocations, "issued_at": now()}, account.customer.language)
    return html_to_pdf(html)


def transfer_allocations(transfer):
    from .models import Allocation

    return list(Allocation.objects.filter(transfer=transfer).select_related("invoice").order_by("created_at"))


def _sample(kind: str) -> dict:
    """Sample data with every field a real document has (so a template that renders on it renders
    on real documents)."""
    customer = {**{f: "" for f in CUSTOMER_FIELDS}, "number": "HQ-C0000001", "kind": "organization",
                "display_name": "Sample Customer Ltd", "legal_name": "Sample Customer Ltd", "tax_id": "TAX1",
                "language": "en", "addresses": [{"kind": "billing", "line1": "1 Sample Street", "line2": "",
                                                 "city": "Example City", "postcode": "10001", "region": "",
                                                 "country": "EX"}]}
    account = {"number": "HQ-A0000001", "currency": "EUR", "payment_mode": "postpaid", "payment_mode_display":
               "Postpaid", "status": "active", "status_display": "Active"}
    line = {"position": 1, "kind": "recurring_fee", "kind_display": "Fee", "description": "Sample line",
            "period_start": today(), "period_end": today(), "quantity": Decimal(1), "unit": "",
            "free_units": Decimal(0), "destination": "", "amount": Decimal("10"), "net": Decimal("8.33"),
            "tax": Decimal("1.67"), "total": Decimal("10"), "tax_list": []}
    invoice = {"number": "HQ-I0000001", "kind": "invoice", "kind_display": "Invoice", "state": "issued",
               "state_display": "Issued", "period": "2026-01", "period_start": today(), "period_end": today(),
               "invoice_date": today(), "due_date": today(), "currency": "EUR", "subtotal": Decimal("8.33"),
               "tax_total": Decimal("1.67"), "total": Decimal("10"), "paid_amount": Decimal(0),
               "credited_amount": Decimal(0), "outstanding": Decimal("10"), "rounding_note": "Sample rounding",
               "reason": "", "language": "en", "is_draft": False}
    invoice.update(purpose="regular", purpose_display="Regular")
    if kind == "invoice":
        return {"invoice": invoice, "lines": [line], "tax_summary": [], "customer": customer, "account": account,
                "credited_invoice": None, "is_credit_note": False, "credit": None, "draft": False, "title": "Invoice"}
    if kind == "credit_note":
        note = {**invoice, "number": "HQ-CN0000001", "kind": "credit_note", "kind_display": "Credit note",
                "total": Decimal("-10"), "subtotal": Decimal("-8.33"), "tax_total": Decimal("-1.67"),
                "reason": "Sample reason"}
        credited_line = {**line, "description": "Credit: Sample line", "net": Decimal("-8.33"),
                         "tax": Decimal("-1.67"), "total": Decimal("-10"), "net_credited": Decimal("8.33"),
                         "tax_credited": Decimal("1.67"), "total_credited": Decimal("10")}
        return {"invoice": note, "lines": [credited_line], "tax_summary": [], "customer": customer,
                "account": account, "credited_invoice": invoice, "is_credit_note": True,
                "credit": {"net": Decimal("8.33"), "tax": Decimal("1.67"), "total": Decimal("10")}, "draft": False,
                "title": "Credit note"}
    if kind == "statement":
        return {"account": account, "customer": customer, "start": today(), "end": today(), "opening": Decimal(0),
                "closing": Decimal(0), "entries": [], "invoices": [invoice]}
    payment = {"id": "sample", "pk": "sample", "amount": Decimal("10"), "currency": "EUR", "created_at": now(),
               "memo": "", "kind": "payment"}
    return {"payment": payment, "account": account, "customer": customer,
            "allocations": [{"amount": Decimal("10"), "created_at": now(), "invoice": invoice}], "issued_at": now()}


def check_template(kind: str, body: str) -> None:
    """Refuse an operator's template that the sandbox refuses or that does not render on sample
    data (`template_error`, with the reason on the `body` field)."""
    template = sandbox.compile_template(body)
    try:
        sandbox.render(template, _common(_sample(kind)))
    except Exception as exc:  # noqa: BLE001
        raise DomainError(f"The template failed to render: {type(exc).__name__}: {exc}", code="template_error",
                          status=422, fields={"body": [str(exc)]}) from exc
