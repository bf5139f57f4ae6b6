"""The customers API and its sub-resources, through HTTP with bearer tokens."""

import pytest

from tarifa.audit.selectors import history
from tarifa.crm import services
from tarifa.crm.models import Contract, Customer

pytestmark = pytest.mark.django_db

CLERK_PERMS = ["crm.view_customer", "crm.add_customer", "crm.change_customer", "crm.delete_customer",
               "crm.view_contact", "crm.add_contact", "crm.delete_contact", "crm.view_contract", "crm.add_contract",
               "crm.add_note", "crm.view_note", "crm.view_address", "crm.add_address"]  # sees what it adds


@pytest.fixture
def clerk(make_user, api):
    return api(make_user(*CLERK_PERMS, username="clerk"))


def test_create_individual(clerk, schemes):
    response = clerk.post("/api/v1/customers/", {"kind": "individual", "first_name": "Maria", "last_name": "Garcia"},
                          format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "HQ-C0000001"
    assert body["display_name"] == "Maria Garcia"
    assert body["status"] == "active"
    assert body["tax_scheme"] == "standard"
    customer = Customer.objects.get(pk=body["id"])
    assert history(customer).get(action="create").actor_label == "clerk"
    assert history(customer).get(action="create").channel == "api"


def test_create_organization_with_nested_contacts_and_addresses(clerk, schemes):
    response = clerk.post("/api/v1/customers/", {
        "kind": "organization", "legal_name": "Acme Logistics LLC", "tax_id": "US-12-3456789",
        "tax_scheme": "exempt", "tags": ["Business"],
        "contacts": [{"kind": "email", "value": "billing@acme.example", "is_preferred": True},
                     {"kind": "phone", "value": "+1 555 020 0300"}],
        "addresses": [{"kind": "legal", "line1": "1 Industrial Park", "city": "Springfield", "country": "US"}],
        "authorised_contacts": [{"name": "Helen Park", "position": "CFO"}],
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["display_name"] == "Acme Logistics LLC"
    assert body["tax_scheme"] == "exempt"
    assert body["tags"] == ["business"]
    assert {c["value"] for c in body["contacts"]} == {"billing@acme.example", "+15550200300"}
    assert body["addresses"][0]["city"] == "Springfield"
    assert Customer.objects.get().authorised_contacts.get().name == "Helen Park"


def test_organization_without_tax_id_is_refused_with_code(clerk):
    response = clerk.post("/api/v1/customers/", {"kind": "organization", "legal_name": "Acme"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "organization_fields_required"
    assert "tax_id" in response.json()["error"]["fields"]
    assert not Customer.objects.exists()


@pytest.mark.parametrize("body", [
    {"kind": "individual", "first_name": "A", "last_name": "B", "nickname": "ab"},
    {"kind": "individual", "first_name": "A", "last_name": "B", "contacts": [{"kind": "email", "value": "a@b.example",
                                                                              "primary": True}]},
    {"kind": "individual", "first_name": "A", "last_name": "B", "number": "HQ-C0000099"},
])
def test_unknown_fields_are_refused(clerk, body):
    response = clerk.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"
    assert not Customer.objects.exists()


def test_bad_nested_contact_writes_nothing(clerk):
    response = clerk.post("/api/v1/customers/", {"kind": "individual", "first_name": "A", "last_name": "B",
                                                  "contacts": [{"kind": "phone", "value": "call me"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_phone"
    assert not Customer.objects.exists()


def test_get_patch_and_archive(clerk, person):
    url = f"/api/v1/customers/{person.pk}/"
    assert clerk.get(url).json()["number"] == person.number
    response = clerk.patch(url, {"last_name": "Garcia-Lopez", "preferred_channel": "sms"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["display_name"] == "Maria Garcia-Lopez"
    response = clerk.patch(url, {"kind": "organization"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "kind_change_not_allowed"
    response = clerk.delete(url, {"reason": "moved abroad"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "closed" and response.json()["archived_at"]
    person.refresh_from_db()
    assert person.status == "closed"
    assert history(person).get(action="close").message == "moved abroad"
    assert clerk.delete(url).json()["error"]["code"] == "already_archived"


def test_archive_refused_while_contract_signed(clerk, person):
    services.sign_contract(services.create_contract(actor="test", customer=person), actor="test")
    response = clerk.delete(f"/api/v1/customers/{person.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "customer_has_live_contracts"


@pytest.mark.parametrize("query", ["555 010 0101", "maria@example.com", "P1234567", "US-12-3456789", "garcia"])
def test_search(clerk, person, company, query):
    response = clerk.get("/api/v1/customers/", {"search": query})
    assert response.status_code == 200
    expected = company.number if query.startswith("US-") else person.number
    assert [c["number"] for c in response.json()["results"]] == [expected]


def test_filters(clerk, person, company):
    services.update_customer(company, actor="test", tags=["vip", "business"])

    def numbers(params):
        return [c["number"] for c in clerk.get("/api/v1/customers/", params).json()["results"]]

    assert numbers({"kind": "organization"}) == [company.number]
    assert numbers({"kind": "individual"}) == [person.number]
    assert numbers({"tags": "vip"}) == [company.number]
    assert numbers({"tags": "vip,gold"}) == []
    services.archive_customer(person, actor="test")
    assert numbers({"status": "closed"}) == [person.number]
    response = clerk.get("/api/v1/customers/", {"kind": "robot"})
    assert response.status_code == 400


def test_filter_by_tax_scheme(clerk, schemes):
    a = services.create_customer(actor="test", kind="individual", first_name="A", last_name="B")
    b = services.create_customer(actor="test", kind="organization", legal_name="L", tax_id="1",
                                 tax_scheme=schemes["exempt"])
    numbers = [c["number"] for c in clerk.get("/api/v1/customers/", {"tax_scheme": "exempt"}).json()["results"]]
    assert numbers == [b.number] and a.number not in numbers


def test_permissions_are_checked(make_user, api, person):
    viewer = api(make_user("crm.view_customer", username="viewer"))
    assert viewer.get("/api/v1/customers/").status_code == 200
    response = viewer.post("/api/v1/customers/", {"kind": "individual", "first_name": "A", "last_name": "B"},
                           format="json")
    assert response.status_code == 403
    assert viewer.delete(f"/api/v1/customers/{person.pk}/").status_code == 403
    assert api().get("/api/v1/customers/").status_code == 401


def test_contacts_endpoint(clerk, person):
    response = clerk.post("/api/v1/contacts/", {"customer": str(person.pk), "kind": "email",
                                                "value": "second@example.com"}, format="json")
    assert response.status_code == 201, response.content
    listed = clerk.get("/api/v1/contacts/", {"customer": str(person.pk)}).json()["results"]
    assert len(listed) == 3
    response = clerk.delete(f"/api/v1/contacts/{response.json()['id']}/")
    assert response.status_code == 200 and response.json()["archived_at"]


def test_contract_sign_needs_its_permission(clerk, make_user, api, person):
    response = clerk.post("/api/v1/contracts/", {"customer": str(person.pk), "type": "service_agreement"},
                          format="json")
    assert response.status_code == 201, response.content
    contract_id = response.json()["id"]
    assert response.json()["number"] == "HQ-K0000001" and response.json()["status"] == "draft"
    assert clerk.post(f"/api/v1/contracts/{contract_id}/sign/", {}, format="json").status_code == 403
    signer = api(make_user("crm.sign_contract", "crm.terminate_contract", "crm.view_contract", username="signer"))
    response = signer.post(f"/api/v1/contracts/{contract_id}/sign/", {"signed_on": "2030-01-01"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "signed"
    response = signer.post(f"/api/v1/contracts/{contract_id}/terminate/", {}, format="json")
    assert response.status_code == 400
    response = signer.post(f"/api/v1/contracts/{contract_id}/terminate/", {"reason": "moved"}, format="json")
    assert response.json()["status"] == "terminated"
    assert Contract.objects.get().status == "terminated"


def test_notes_are_append_only(clerk, person):
    response = clerk.post("/api/v1/notes/", {"customer": str(person.pk), "text": "Prefers e-mail."}, format="json")
    assert response.status_code == 201
    assert response.json()["author_label"] == "clerk"
    note_url = f"/api/v1/notes/{response.json()['id']}/"
    assert clerk.patch(note_url, {"text": "edited"}, format="json").status_code in (403, 405)
    assert clerk.delete(note_url).status_code in (403, 405)
    assert person.notes.get().text == "Prefers e-mail."


def test_customer_viewset_create_service_can_be_overridden(person):
    """The ledger registers every new customer with its first account by subclassing."""
    from rest_framework.test import APIRequestFactory, force_authenticate

    from tarifa.crm.api import CustomerViewSet
    from tarifa.identity.services import create_user

    seen = []

    class WithAccount(CustomerViewSet):
        def create_service(*, actor, **data):
            customer = services.create_customer(actor=actor, **data)
            seen.append(customer.number)
            return customer

    user = create_user(actor="test", username="root", is_superuser=True)
    request = APIRequestFactory().post("/api/v1/customers/", {"kind": "individual", "first_name": "A",
                                                              "last_name": "B"}, format="json")
    force_authenticate(request, user=user)
    response = WithAccount.as_view({"post": "create"})(request)
    assert response.status_code == 201
    assert seen == [response.data["number"]]
