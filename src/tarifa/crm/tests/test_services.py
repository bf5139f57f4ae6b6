"""Services: kind rules, numbering, contacts, contracts, closing, and the audit trail."""

import datetime as dt

import pytest

from tarifa.audit.models import AuditEvent
from tarifa.audit.selectors import history
from tarifa.crm import selectors, services
from tarifa.crm.models import Contact, Contract, Customer, Note
from tarifa.kernel.errors import DomainError

pytestmark = pytest.mark.django_db


def test_individual_gets_next_number_and_derived_name(person):
    second = services.create_customer(actor="test", kind="individual", first_name="John", last_name="Smith")
    assert person.number == "HQ-C0000001"
    assert second.number == "HQ-C0000002"
    assert second.display_name == "John Smith"
    assert second.status == Customer.Status.ACTIVE


def test_organization_display_name_is_legal_name(company):
    assert company.display_name == "Acme Logistics LLC"
    assert company.authorised_contacts.get().name == "Helen Park"


@pytest.mark.parametrize("kind, fields, code, missing", [
    ("individual", {"first_name": "Maria"}, "individual_fields_required", {"last_name"}),
    ("individual", {}, "individual_fields_required", {"first_name", "last_name"}),
    ("organization", {"legal_name": "Acme"}, "organization_fields_required", {"tax_id"}),
    ("organization", {"tax_id": "123"}, "organization_fields_required", {"legal_name"}),
])
def test_kind_specific_required_fields(kind, fields, code, missing):
    with pytest.raises(DomainError) as exc:
        services.create_customer(actor="test", kind=kind, **fields)
    assert exc.value.code == code
    assert set(exc.value.fields) == missing
    assert not Customer.objects.exists()


def test_fields_of_the_other_kind_are_refused():
    with pytest.raises(DomainError) as exc:
        services.create_customer(actor="test", kind="organization", legal_name="Acme", tax_id="1",
                                 birth_date=dt.date(1990, 1, 1))
    assert exc.value.code == "field_not_for_kind"
    with pytest.raises(DomainError) as exc:
        services.create_customer(actor="test", kind="individual", first_name="A", last_name="B", legal_name="X")
    assert exc.value.code == "field_not_for_kind"


def test_unknown_kind_refused():
    with pytest.raises(DomainError) as exc:
        services.create_customer(actor="test", kind="robot", first_name="A", last_name="B")
    assert exc.value.code == "invalid_kind"


def test_refused_create_writes_nothing_not_even_contacts():
    with pytest.raises(DomainError) as exc:
        services.create_customer(actor="test", kind="individual", first_name="A", last_name="B",
                                 contacts=[{"kind": "email", "value": "a@example.com"},
                                           {"kind": "phone", "value": "not a phone"}])
    assert exc.value.code == "invalid_phone"
    assert not Customer.objects.exists() and not Contact.objects.exists()
    assert not AuditEvent.objects.filter(object_type__startswith="crm.").exists()


def test_default_tax_scheme_is_standard(schemes):
    customer = services.create_customer(actor="test", kind="individual", first_name="A", last_name="B")
    exempt = services.create_customer(actor="test", kind="organization", legal_name="Library", tax_id="9",
                                      tax_scheme=schemes["exempt"])
    assert customer.tax_scheme == schemes["standard"]
    assert exempt.tax_scheme.applies("VAT") is False
    assert schemes["standard"].applies("VAT") is True


def test_tax_scheme_lists_exempt_codes():
    scheme = services.create_tax_scheme(actor="test", code="no-excise", name="No excise",
                                        exempt_tax_codes=[" EXCISE ", "EXCISE"])
    assert scheme.exempt_tax_codes == ["EXCISE"]
    assert not scheme.applies("EXCISE") and scheme.applies("VAT")


def test_create_is_audited_with_values(person):
    event = history(person).get(action="create")
    assert event.actor_label == "test"
    assert event.changes["number"] == [None, "HQ-C0000001"]
    assert event.changes["last_name"] == [None, "Garcia"]
    assert AuditEvent.objects.filter(object_type="crm.contact", action="create").count() == 2


def test_update_records_changed_fields_and_normalises_tags(person):
    services.update_customer(person, actor="test", last_name="Garcia-Lopez", tags=["VIP", " vip", "gold"])
    person.refresh_from_db()
    assert person.last_name == "Garcia-Lopez"
    assert person.tags == ["gold", "vip"]
    event = history(person).filter(action="update").get()
    assert event.changes["last_name"] == ["Garcia", "Garcia-Lopez"]


def test_kind_cannot_change(person):
    with pytest.raises(DomainError) as exc:
        services.update_customer(person, actor="test", kind="organization", legal_name="X", tax_id="1")
    assert exc.value.code == "kind_change_not_allowed"


def test_update_cannot_blank_a_required_field(company):
    with pytest.raises(DomainError) as exc:
        services.update_customer(company, actor="test", tax_id="")
    assert exc.value.code == "organization_fields_required"
    company.refresh_from_db()
    assert company.tax_id == "US-12-3456789"


def test_phone_stored_as_digits_and_one_preferred_per_kind(person):
    phone = person.contacts.get(kind="phone")
    assert phone.value == "+15550100101"
    second = services.add_contact(person, actor="test", kind="phone", value="555-0199", is_preferred=True)
    phone.refresh_from_db()
    assert second.is_preferred and not phone.is_preferred
    assert selectors.preferred_contact(person, "phone") == second


def test_duplicate_contact_and_bad_email_refused(person):
    with pytest.raises(DomainError) as exc:
        services.add_contact(person, actor="test", kind="phone", value="+1 555 010 0101")
    assert exc.value.code == "duplicate_contact"
    with pytest.raises(DomainError) as exc:
        services.add_contact(person, actor="test", kind="email", value="not-an-email")
    assert exc.value.code == "invalid_email"


def test_removed_contact_is_archived_not_deleted(person):
    email = person.contacts.get(kind="email")
    services.remove_contact(email, actor="test", reason="bounced")
    email.refresh_from_db()
    assert email.archived_at is not None
    assert list(selectors.active_contacts(person).values_list("kind", flat=True)) == ["phone"]
    assert history(email).get(action="archive").message == "bounced"


def test_address_country_is_validated(person):
    assert person.addresses.get().country == "US"
    with pytest.raises(DomainError) as exc:
        services.add_address(person, actor="test", kind="billing", line1="x", city="y", country="USA")
    assert exc.value.code == "validation_failed"
    assert "country" in exc.value.fields


def test_authorised_contacts_only_for_organizations(person):
    with pytest.raises(DomainError) as exc:
        services.add_authorised_contact(person, actor="test", name="Someone")
    assert exc.value.code == "not_an_organization"


def test_contract_numbering_sign_and_terminate(person):
    contract = services.create_contract(actor="test", customer=person, date=dt.date(2024, 1, 15))
    other = services.create_contract(actor="test", customer=person, type="addendum")
    assert (contract.number, other.number) == ("HQ-K0000001", "HQ-K0000002")
    assert contract.status == Contract.Status.DRAFT
    signed = services.sign_contract(contract, actor="test", signed_on=dt.date(2024, 1, 16))
    assert signed.status == Contract.Status.SIGNED and signed.signed_on == dt.date(2024, 1, 16)
    with pytest.raises(DomainError) as exc:
        services.sign_contract(signed, actor="test")
    assert exc.value.code == "contract_not_draft"
    with pytest.raises(DomainError) as exc:
        services.update_contract(signed, actor="test", title="changed")
    assert exc.value.code == "contract_not_draft"
    with pytest.raises(DomainError) as exc:
        services.terminate_contract(signed, actor="test", reason="  ")
    assert exc.value.code == "reason_required"
    ended = services.terminate_contract(signed, actor="test", reason="moved away")
    assert ended.status == Contract.Status.TERMINATED
    assert [e.action for e in history(ended)][:3] == ["terminate", "sign", "create"]
    assert history(ended).get(action="terminate").message == "moved away"


def test_contract_cannot_be_signed_before_its_date(person):
    contract = services.create_contract(actor="test", customer=person, date=dt.date(2024, 5, 1))
    with pytest.raises(DomainError) as exc:
        services.sign_contract(contract, actor="test", signed_on=dt.date(2024, 4, 30))
    assert exc.value.code == "signed_before_date"


def test_closing_refused_while_a_contract_is_signed(person):
    contract = services.create_contract(actor="test", customer=person)
    services.sign_contract(contract, actor="test")
    with pytest.raises(DomainError) as exc:
        services.archive_customer(person, actor="test", reason="leaving")
    assert exc.value.code == "customer_has_live_contracts" and exc.value.status == 409
    person.refresh_from_db()
    assert person.status == Customer.Status.ACTIVE and person.archived_at is None
    services.terminate_contract(contract, actor="test", reason="leaving")
    closed = services.archive_customer(person, actor="test", reason="leaving")
    assert closed.status == Customer.Status.CLOSED and closed.archived_at is not None
    event = history(closed).get(action="close")
    assert event.changes["status"] == ["active", "closed"] and event.message == "leaving"


def test_closed_customer_refuses_changes_but_takes_notes(person):
    services.archive_customer(person, actor="test")
    with pytest.raises(DomainError) as exc:
        services.add_contact(person, actor="test", kind="email", value="x@example.com")
    assert exc.value.code == "customer_closed"
    with pytest.raises(DomainError) as exc:
        services.update_customer(person, actor="test", first_name="Mary")
    assert exc.value.code == "archived"
    with pytest.raises(DomainError) as exc:
        services.archive_customer(person, actor="test")
    assert exc.value.code == "already_archived"
    note = services.add_note(person, actor="test", text="Called to say goodbye.")
    assert note.customer == person


def test_notes_keep_their_author(person, make_user):
    clerk = make_user("crm.add_note", username="clerk")
    note = services.add_note(person, actor=clerk, text="  Prefers calls after 6 pm. ")
    assert (note.text, note.author, note.author_label) == ("Prefers calls after 6 pm.", clerk, "clerk")
    with pytest.raises(DomainError) as exc:
        services.add_note(person, actor=clerk, text="   ")
    assert exc.value.code == "note_empty"
    assert Note.objects.count() == 1


def test_tax_scheme_in_use_cannot_be_archived(schemes, person):
    with pytest.raises(DomainError) as exc:
        services.archive_tax_scheme(schemes["standard"], actor="test")
    assert exc.value.code == "tax_scheme_in_use"
    assert services.archive_tax_scheme(schemes["exempt"], actor="test").archived_at is not None


def test_customer_history_includes_related_records(person):
    contract = services.create_contract(actor="test", customer=person)
    services.add_note(person, actor="test", text="hello")
    types = set(selectors.customer_history(person).values_list("object_type", flat=True))
    assert {"crm.customer", "crm.contact", "crm.address", "crm.contract", "crm.note"} <= types
    assert selectors.customer_history(person).filter(object_id=str(contract.pk)).exists()


@pytest.mark.parametrize("query", ["Maria Garcia", "garcia", "gar mar", "HQ-C0000001", "C0000001", "0000001",
                                   "+1 555 010 0101", "5550100101", "010-0101", "MARIA@example",
                                   "maria@example.com", "example.com", "p1234567"])
def test_search_finds_individual_by_anything(person, company, query):
    assert list(selectors.search_customers(query)) == [person]


@pytest.mark.parametrize("query", ["US-12-3456789", "3456789", "acme", "LOGISTICS", "acme log", "Helen", "park"])
def test_search_finds_organization(person, company, query):
    assert list(selectors.search_customers(query)) == [company]


def test_search_returns_each_customer_once(person):
    services.add_contact(person, actor="test", kind="email", value="garcia.work@example.com")
    assert selectors.search_customers("garcia").count() == 1
    assert selectors.search_customers("nobody-like-this").count() == 0
    assert selectors.search_customers("maria smith").count() == 0  # every word must match
    assert selectors.search_customers("%").count() == 0


def test_search_follows_changes(person):
    services.update_customer(person, actor="test", last_name="Lopez")
    assert list(selectors.search_customers("lopez")) == [person]
    assert selectors.search_customers("garcia").count() == 0
    phone = person.contacts.get(kind="phone")
    services.remove_contact(phone, actor="test")
    assert selectors.search_customers("5550100101").count() == 0
    services.add_contact(person, actor="test", kind="phone", value="+44 20 7946 0000")
    assert list(selectors.search_customers("20 7946 0000")) == [person]


def test_rebuild_search_terms(person, company):
    from tarifa.crm.models import SearchTerm

    SearchTerm.objects.all().delete()
    assert selectors.search_customers("garcia").count() == 0
    assert services.rebuild_search_terms() == 2
    assert list(selectors.search_customers("garcia")) == [person]


def test_demo_loads_through_services():
    from tarifa.crm import demo

    summary = demo.load(actor="demo")
    assert summary == {"tax_schemes": 2, "customers": 5, "contracts": 6}
    assert Customer.objects.filter(kind="organization").count() == 2
    assert Contract.objects.filter(status="signed", signed_document__isnull=False).count() == 3
    assert demo.load(actor="demo") == {"skipped": "customers exist"}
