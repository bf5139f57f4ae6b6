"""Document templates cannot reach server files, internal URLs or records beyond the document
(issue 11, High 2): WeasyPrint fetches only data: URLs and static files; templates render in a
sandbox with plain data."""

import http.server
import io
import threading

import pytest
from pypdf import PdfReader

from tarifa.billing import documents
from tarifa.billing.models import DocumentTemplate, Invoice
from tarifa.kernel import sandbox

pytestmark = pytest.mark.django_db

SECRET = "TOP-SECRET-3f9c1a-do-not-leak"


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text(SECRET)
    return path


@pytest.fixture
def loopback():
    """An HTTP server on 127.0.0.1 that records every request it gets."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            body = SECRET.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _everything_in(pdf: bytes) -> str:
    """The PDF's raw bytes, text and embedded files, as one string to search."""
    reader = PdfReader(io.BytesIO(pdf))
    parts = [pdf.decode("latin-1")]
    parts += [page.extract_text() or "" for page in reader.pages]
    for name, contents in reader.attachments.items():
        parts.append(name)
        parts += [c.decode("latin-1") for c in contents]
    return "\n".join(parts)


def test_a_pdf_does_not_attach_or_embed_a_server_file(secret_file):
    html = (f'<html><head><link rel="attachment" href="{secret_file.as_uri()}" title="key">'
            f'<link rel="stylesheet" href="{secret_file.as_uri()}"></head><body>'
            f'<a rel="attachment" href="{secret_file.as_uri()}">k</a><img src="{secret_file.as_uri()}">'
            f'<object data="file:///etc/passwd"></object><p>Receipt</p></body></html>')

    pdf = documents.html_to_pdf(html)

    assert pdf[:4] == b"%PDF"
    everything = _everything_in(pdf)
    assert "Receipt" in everything
    assert SECRET not in everything
    assert "root:x:0:0" not in everything
    assert not PdfReader(io.BytesIO(pdf)).attachments


def test_a_pdf_never_requests_an_internal_url(loopback, caplog):
    base, seen = loopback
    html = (f'<html><head><link rel="stylesheet" href="{base}/style.css">'
            f'<link rel="attachment" href="{base}/admin/secret"></head><body>'
            f'<img src="{base}/image.png"><p>Invoice</p></body></html>')

    with caplog.at_level("WARNING", logger="tarifa.billing.documents"):
        pdf = documents.html_to_pdf(html)

    assert pdf[:4] == b"%PDF"
    assert seen == []
    assert SECRET not in _everything_in(pdf)
    assert f"refused to fetch {base}/admin/secret" in caplog.text


def test_data_urls_and_static_files_are_still_embedded():
    roots = documents.static_roots()
    css = next(p for root in roots for p in root.rglob("*.css"))
    html = (f'<html><head><link rel="attachment" href="{css.as_uri()}" title="style"></head><body>'
            '<img src="data:image/svg+xml;base64,PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnIHdpZHRoPScx'
            'JyBoZWlnaHQ9JzEnLz4="><p>ok</p></body></html>')

    reader = PdfReader(io.BytesIO(documents.html_to_pdf(html)))

    assert css.name in reader.attachments  # a static file may be embedded


def test_a_receipt_template_cannot_carry_the_secret_key(secret_file, loopback, make_user, api):
    """The reported attack, end to end: a template editor saves a receipt template that links the
    server's secret key and an internal URL; the receipt PDF carries neither, nothing is requested."""
    from tarifa.web.demo_loader import load_demo
    from tarifa.ledger.models import Transfer

    load_demo(actor="demo")
    base, seen = loopback
    editor = make_user("billing.view_documenttemplate", "billing.add_documenttemplate", username="designer",
                       password=None)
    body = (f'<html><head><link rel="attachment" href="{secret_file.as_uri()}">'
            f'<link rel="attachment" href="file:///etc/passwd"><link rel="stylesheet" href="{base}/x.css"></head>'
            '<body><h1>RECEIPT {{ account.number }}</h1><p>{{ payment.amount|floatformat:2 }}</p></body></html>')
    created = api(editor).post("/api/v1/document-templates/", {"kind": "receipt", "language": "en", "body": body},
                               format="json")
    assert created.status_code == 201, created.content

    invoice = Invoice.objects.filter(kind="invoice").exclude(state="draft").order_by("number").first()
    payment = Transfer.objects.filter(kind="payment", credit_account_id=invoice.billing_account.ledger_account_id).first()
    viewer = make_user("billing.view_invoice", "ledger.view_transfer", username="clerk", password=None)
    response = api(viewer).get(f"/api/v1/billing/receipt/{payment.pk}/")

    assert response.status_code == 200, response.content
    everything = _everything_in(response.content)
    assert f"RECEIPT {invoice.billing_account.number}" in everything
    assert SECRET not in everything and "root:x:0:0" not in everything
    assert seen == []


# --- the template sandbox ----------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ['{% load static %}', '{% include "billing/documents/_style.html" %}',
                                 '{% extends "web/base.html" %}', '{% debug %}', '{% ssi "/etc/passwd" %}',
                                 '{% url "web:dashboard" %}', '{% block x %}{% endblock %}'])
def test_a_template_with_a_tag_outside_the_sandbox_is_refused_when_saved(tag, make_user, api):
    editor = make_user("billing.add_documenttemplate", username="designer", password=None)

    response = api(editor).post("/api/v1/document-templates/", {
        "kind": "invoice", "language": "en", "body": f"<html><body>{tag}<p>{{{{ invoice.number }}}}</p></body></html>"},
        format="json")

    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "template_error"
    name = tag.split()[1]
    assert f"{{% {name} %}} is not allowed" in error["message"] and error["fields"]["body"]
    assert not DocumentTemplate.objects.exists()


def test_the_screen_shows_why_a_template_is_refused(make_user, staff_client):
    editor = make_user("billing.view_documenttemplate", "billing.add_documenttemplate", username="designer")

    response = staff_client(editor).post("/billing/documenttemplate/add/", {
        "kind": "invoice", "language": "en", "body": "{% load static %}<p>{{ invoice.number }}</p>", "note": ""})

    assert response.status_code == 200
    assert "{% load %} is not allowed" in response.content.decode()
    assert not DocumentTemplate.objects.exists()


def test_templates_see_only_the_documents_data():
    from tarifa.web.demo_loader import load_demo

    load_demo(actor="demo")
    invoice = Invoice.objects.filter(kind="invoice").exclude(state="draft").order_by("number").first()
    context = documents.invoice_context(invoice)
    assert sandbox.plain(context) == context  # plain data only: no model objects, no managers

    body = ("[{{ customer.billing_accounts.all }}][{{ customer.contacts.all.0.value }}]"
            "[{{ account.ledger_account.balance }}][{{ invoice.billing_account.customer.document_number }}]"
            "[{{ invoice.customer.pk }}][{{ invoice.number }}]")
    out = sandbox.render(body, context)

    assert out == f"[][][][][][{invoice.number}]"


def test_private_attributes_are_refused():
    with pytest.raises(sandbox.TemplateRefused):
        sandbox.compile_template("{{ invoice._state.db }}")
    with pytest.raises(TypeError):
        sandbox.plain({"invoice": Invoice()})
