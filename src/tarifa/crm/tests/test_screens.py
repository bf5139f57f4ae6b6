"""Operator screens: the customer page (360° view and panels), list search and filters, forms, import."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tarifa.crm import panels, services
from tarifa.crm.models import Contact, Contract, Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user, staff_client):
    user = make_user("crm.view_customer", "crm.add_customer", "crm.change_customer", "crm.delete_customer",
                     "crm.add_contact", "crm.change_contact", "crm.delete_contact", "crm.add_note",
                     "crm.view_contract", "crm.add_contract", "crm.sign_contract", "crm.add_attachment",
                     "crm.view_attachment", "crm.view_note", username="operator")
    return staff_client(user)


def test_customer_page_shows_profile_contacts_contracts_notes_and_history(operator, person):
    contract = services.create_contract(actor="test", customer=person, title="Fibre 100")
    services.add_note(person, actor="test", text="Prefers calls after 6 pm.")
    services.update_customer(person, actor="test", tags=["vip"])
    html = operator.get(f"/crm/customer/{person.pk}/").content.decode()
    assert 'data-testid="display-name">Maria Garcia<' in html
    assert "P1234567" in html  # identity document in the profile
    assert "+15550100101" in html and "maria@example.com" in html
    assert "12 Elm Street" in html
    assert contract.number in html and "Fibre 100" in html
    assert "Prefers calls after 6 pm." in html
    history = html.split('data-testid="history"')[1]
    assert "Changed" in history and "vip" in history
    # Events of the customer's contacts, contract and note are labelled with what they were about.
    assert 'data-testid="history-object">Phone +15550100101<' in history
    assert f'data-testid="history-object">{contract.number}<' in history
    assert history.count("<strong>Created</strong>") >= 4  # customer, two contacts, address, contract, note


def test_customer_page_actions_follow_permissions(make_user, staff_client, person):
    viewer = staff_client(make_user("crm.view_customer", username="viewer"))
    html = viewer.get(f"/crm/customer/{person.pk}/").content.decode()
    assert 'data-action="add-contact"' not in html and 'data-action="edit"' not in html
    assert viewer.get(f"/crm/customer/{person.pk}/do/add-contact/").status_code == 403


def test_add_contact_from_customer_page(operator, person):
    response = operator.post(f"/crm/customer/{person.pk}/do/add-contact/",
                             {"kind": "phone", "value": "+44 20 7946 0000", "label": "work"})
    assert response.status_code == 302 and response["Location"] == f"/crm/customer/{person.pk}/"
    assert person.contacts.filter(value="+442079460000", label="work").exists()
    response = operator.post(f"/crm/customer/{person.pk}/do/add-contact/", {"kind": "phone", "value": "hello"})
    assert response.status_code == 200 and "phone number" in response.content.decode()


def test_attach_file_from_customer_page_refuses_wrong_type(operator, person):
    bad = SimpleUploadedFile("scan.pdf", b"MZ\x90\x00binary", content_type="application/pdf")
    response = operator.post(f"/crm/customer/{person.pk}/do/attach-file/", {"file": bad})
    assert response.status_code == 200
    assert "Only PDF, PNG, JPEG, TIFF and plain text" in response.content.decode()
    good = SimpleUploadedFile("scan.pdf", b"%PDF-1.4 ok", content_type="application/pdf")
    response = operator.post(f"/crm/customer/{person.pk}/do/attach-file/", {"file": good, "description": "ID"})
    assert response.status_code == 302
    html = operator.get(f"/crm/customer/{person.pk}/").content.decode()
    attachment = person.attachments.get()
    assert f"/crm/attachment/{attachment.pk}/download/" in html


def test_sign_contract_with_scan_in_ui(operator, person):
    contract = services.create_contract(actor="test", customer=person)
    scan = SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed", content_type="application/pdf")
    response = operator.post(f"/crm/contract/{contract.pk}/do/sign/", {"file": scan, "signed_on": ""})
    assert response.status_code == 302
    contract.refresh_from_db()
    assert contract.status == Contract.Status.SIGNED and contract.signed_document.filename == "signed.pdf"


def test_new_contract_form_prefills_customer(operator, person):
    html = operator.get(f"/crm/contract/add/?customer={person.pk}").content.decode()
    assert f'value="{person.number}"' in html
    response = operator.post("/crm/contract/add/", {"customer": person.number, "type": "service_agreement",
                                                    "date": "", "title": "Fibre"})
    assert response.status_code == 302
    assert person.contracts.get().title == "Fibre"
    response = operator.post("/crm/contract/add/", {"customer": "HQ-C9999999", "type": "service_agreement"})
    assert response.status_code == 200 and "No customer HQ-C9999999" in response.content.decode()


def test_add_customer_form_checks_kind_rules(operator, schemes):
    response = operator.post("/crm/customer/add/", {"kind": "organization", "legal_name": "Acme",
                                                    "language": "en", "preferred_channel": "email"})
    assert response.status_code == 200
    assert "Required for an organization." in response.content.decode()
    response = operator.post("/crm/customer/add/", {"kind": "individual", "first_name": "Ann", "last_name": "Lee",
                                                    "language": "en", "preferred_channel": "email",
                                                    "tax_scheme": "exempt", "tags": "a, b",
                                                    "email": "ann@example.com"})
    assert response.status_code == 302
    customer = Customer.objects.get()
    assert customer.tax_scheme.code == "exempt" and customer.tags == ["a", "b"]
    assert customer.contacts.get().value == "ann@example.com"


def test_list_search_and_filters(operator, person, company):
    assert 'type="search" name="q"' in operator.get("/crm/customer/").content.decode()
    services.add_contact(person, actor="test", kind="email", value="garcia2@example.com")
    html = operator.get("/crm/customer/", {"q": "garcia"}).content.decode()
    assert html.count(f">{person.number}<") == 1 and company.number not in html
    html = operator.get("/crm/customer/", {"q": "555 010 0101"}).content.decode()
    assert person.number in html
    html = operator.get("/crm/customer/", {"kind": "organization"}).content.decode()
    assert company.number in html and person.number not in html
    services.update_customer(person, actor="test", tags=["vip"])
    html = operator.get("/crm/customer/", {"tags": "vip"}).content.decode()
    assert person.number in html and company.number not in html
    html = operator.get("/crm/customer/", {"sort": "-name"}).content.decode()
    assert html.index(person.number) < html.index(company.number)  # Maria Garcia after Acme, descending


def test_csv_import(operator, schemes):
    csv = ("kind,first_name,last_name,legal_name,tax_id,tax_scheme,tags,email,phone\n"
           "individual,Ann,Lee,,,,new,ann@example.com,+1 555 0100 123\n"
           "organization,,,Beta Corp,TX-1,exempt,,billing@beta.example,\n")
    upload = SimpleUploadedFile("customers.csv", csv.encode(), content_type="text/csv")
    response = operator.post("/crm/customer/import/", {"file": upload})
    assert response.status_code == 302, response.content.decode()
    assert Customer.objects.count() == 2
    beta = Customer.objects.get(legal_name="Beta Corp")
    assert beta.tax_scheme.code == "exempt" and beta.contacts.get().value == "billing@beta.example"
    assert Contact.objects.filter(value="+15550100123").exists()


def test_csv_import_with_a_bad_row_writes_nothing(operator):
    csv = "kind,first_name,last_name,legal_name,tax_id\nindividual,Ann,Lee,,\norganization,,,Beta Corp,\n"
    response = operator.post("/crm/customer/import/", {"file": io.BytesIO(csv.encode())})
    assert response.status_code == 400
    assert "Row 3" in response.content.decode()
    assert not Customer.objects.exists()


def test_registered_panel_renders_with_its_context(operator, person, make_user, staff_client, settings, tmp_path):
    template_dir = tmp_path / "templates"
    (template_dir / "test").mkdir(parents=True)
    (template_dir / "test" / "panel.html").write_text(
        '<p data-testid="balance">{{ customer.number }} balance {{ balance }}</p>')
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [template_dir]}]
    panels.register_panel("Billing accounts", "test/panel.html",
                          context_func=lambda request, customer: {"balance": "12.50 USD"},
                          permission="crm.view_contract", key="test-accounts", order=1)
    try:
        html = operator.get(f"/crm/customer/{person.pk}/").content.decode()
        assert "Billing accounts" in html
        assert f'<p data-testid="balance">{person.number} balance 12.50 USD</p>' in html
        viewer = staff_client(make_user("crm.view_customer", username="viewer"))
        assert "Billing accounts" not in viewer.get(f"/crm/customer/{person.pk}/").content.decode()
    finally:
        panels.unregister_panel("test-accounts")
    assert "test-accounts" not in {p.key for p in panels.all_panels()}


def test_register_panel_twice_replaces(rf):
    panels.register_panel("One", "a.html", key="dup")
    panels.register_panel("Two", "a.html", key="dup")
    try:
        assert [p.title for p in panels.all_panels() if p.key == "dup"] == ["Two"]
    finally:
        panels.unregister_panel("dup")


def test_contact_edit_and_remove_screens(operator, person):
    email = person.contacts.get(kind="email")
    response = operator.post(f"/crm/contact/{email.pk}/edit/", {"kind": "email", "value": "new@example.com",
                                                                "label": "home"})
    assert response.status_code == 302
    email.refresh_from_db()
    assert email.value == "new@example.com"
    response = operator.post(f"/crm/contact/{email.pk}/archive/", {"reason": "bounced"})
    assert response.status_code == 302
    email.refresh_from_db()
    assert email.archived_at is not None
    html = operator.get(f"/crm/customer/{person.pk}/").content.decode()
    contacts = html.split('data-testid="contacts"')[1].split('data-testid="addresses"')[0]
    assert "new@example.com" not in contacts and "+15550100101" in contacts


def test_customer_page_hides_notes_and_files_from_who_may_not_read_them(make_user, staff_client, person):
    """Issue 10 item 14: without crm.view_note / crm.view_attachment, neither the notes, the file
    names nor their history events show on the customer page."""
    services.add_note(person, actor="test", text="Owes us a favour.")
    services.attach_file(person, actor="test", file=SimpleUploadedFile("passport-scan.txt", b"scan", "text/plain"))
    clerk = staff_client(make_user("crm.view_customer", username="clerk", password=None))
    html = clerk.get(f"/crm/customer/{person.pk}/").content.decode()
    assert "Owes us a favour." not in html and 'data-testid="notes"' not in html
    assert "passport-scan" not in html and 'data-testid="attachments"' not in html
    assert "Maria Garcia" in html
    reader = staff_client(make_user("crm.view_customer", "crm.view_note", "crm.view_attachment", username="reader",
                                    password=None))
    html = reader.get(f"/crm/customer/{person.pk}/").content.decode()
    assert "Owes us a favour." in html and "passport-scan" in html


def test_a_signed_contract_offers_no_edit(operator, person, make_user, staff_client):
    """Only drafts can be edited: a signed contract shows no Edit button, and its edit page sends the
    operator back with a message instead of a form whose Save always fails."""
    contract = services.create_contract(actor="test", customer=person, title="Fibre 100")
    editor = staff_client(make_user("crm.view_contract", "crm.change_contract", username="editor", password=None))
    assert 'data-action="edit"' in editor.get(f"/crm/contract/{contract.pk}/").content.decode()
    services.sign_contract(contract, actor="test", signed_on=contract.date,
                           file=SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed", "application/pdf"))
    assert 'data-action="edit"' not in editor.get(f"/crm/contract/{contract.pk}/").content.decode()
    r = editor.get(f"/crm/contract/{contract.pk}/edit/", follow=True)
    assert r.redirect_chain[-1][0] == f"/crm/contract/{contract.pk}/" and "cannot be changed now" in r.content.decode()
    r = editor.post(f"/crm/contract/{contract.pk}/edit/", {"title": "Changed"})
    contract.refresh_from_db()
    assert r.status_code == 302 and contract.title == "Fibre 100"
