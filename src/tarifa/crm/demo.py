"""Demo customers: individuals and organizations with contacts, addresses, contracts,
notes and a file, under the "standard" and "exempt" tax schemes. Through services only."""

import datetime as dt

from django.core.files.base import ContentFile

from . import services
from .models import Customer

INDIVIDUALS = [
    {"first_name": "Maria", "last_name": "Garcia", "birth_date": dt.date(1985, 3, 14), "document_type": "passport",
     "document_number": "P1234567", "document_issued_by": "Ministry of Interior",
     "document_issue_date": dt.date(2019, 6, 1), "tags": ["vip"], "preferred_channel": "sms",
     "contacts": [{"kind": "phone", "value": "+1 555 010 0101", "label": "mobile", "is_preferred": True},
                  {"kind": "email", "value": "maria.garcia@example.com", "is_preferred": True}],
     "addresses": [{"kind": "service", "line1": "12 Elm Street", "city": "Springfield", "postcode": "12345",
                    "country": "US"}]},
    {"first_name": "John", "last_name": "Smith", "birth_date": dt.date(1972, 11, 2), "document_type": "national_id",
     "document_number": "ID-889900", "document_issued_by": "City Registry",
     "contacts": [{"kind": "phone", "value": "+1 555 010 0202", "label": "home"},
                  {"kind": "email", "value": "john.smith@example.com"}],
     "addresses": [{"kind": "service", "line1": "7 Oak Avenue", "line2": "Apt 3", "city": "Springfield",
                    "postcode": "12346", "country": "US"},
                   {"kind": "billing", "line1": "PO Box 77", "city": "Springfield", "postcode": "12340",
                    "country": "US"}]},
    {"first_name": "Aiko", "last_name": "Tanaka", "preferred_channel": "email", "tags": ["student"],
     "contacts": [{"kind": "email", "value": "aiko.tanaka@example.org", "is_preferred": True}],
     "addresses": [{"kind": "service", "line1": "3 Birch Lane", "city": "Shelbyville", "country": "US"}]},
]

ORGANIZATIONS = [
    {"legal_name": "Acme Logistics LLC", "tax_id": "US-12-3456789", "registration_number": "REG-2011-0042",
     "registration_date": dt.date(2011, 4, 20), "legal_address": "1 Industrial Park, Springfield, US",
     "tags": ["business", "priority"], "preferred_channel": "email",
     "contacts": [{"kind": "email", "value": "billing@acme-logistics.example", "label": "billing",
                   "is_preferred": True},
                  {"kind": "phone", "value": "+1 555 020 0300", "label": "reception"}],
     "addresses": [{"kind": "legal", "line1": "1 Industrial Park", "city": "Springfield", "postcode": "12350",
                    "country": "US"},
                   {"kind": "service", "line1": "Warehouse 4, Dock Road", "city": "Springfield",
                    "postcode": "12351", "country": "US"}],
     "authorised_contacts": [{"name": "Helen Park", "position": "CFO", "phone": "+1 555 020 0301",
                              "email": "helen.park@acme-logistics.example",
                              "authority": "Signs contracts and amendments."}]},
    {"legal_name": "Springfield Public Library", "tax_id": "US-98-7654321", "scheme": "exempt",
     "registration_number": "NPO-1999-7", "tags": ["public-sector"],
     "contacts": [{"kind": "email", "value": "it@library.example", "is_preferred": True}],
     "addresses": [{"kind": "legal", "line1": "100 Main Street", "city": "Springfield", "country": "US"}],
     "authorised_contacts": [{"name": "Tom Reed", "position": "Head of IT", "email": "tom.reed@library.example"}]},
]


def load(*, actor) -> dict:
    if Customer.objects.exists():
        return {"skipped": "customers exist"}
    schemes = {
        "standard": services.create_tax_scheme(actor=actor, code="standard", name="Standard taxation",
                                               description="All taxes of the catalog apply."),
        "exempt": services.create_tax_scheme(actor=actor, code="exempt", name="Tax exempt", exempt=True,
                                             description="Charities and public bodies with an exemption certificate."),
    }
    customers = []
    for data in INDIVIDUALS:
        customers.append(services.create_customer(actor=actor, kind=Customer.Kind.INDIVIDUAL, **data))
    for data in ORGANIZATIONS:
        data = dict(data)
        scheme = schemes[data.pop("scheme", "standard")]
        customers.append(services.create_customer(actor=actor, kind=Customer.Kind.ORGANIZATION,
                                                  tax_scheme=scheme, **data))
    maria, john, aiko, acme, library = customers
    contracts = []
    for customer, signed in [(maria, True), (john, True), (acme, True), (library, False), (aiko, False)]:
        contract = services.create_contract(actor=actor, customer=customer, date=dt.date(2024, 1, 15),
                                            title="Internet and telephony")
        if signed:
            scan = ContentFile(b"%PDF-1.4\n% demo signed contract " + contract.number.encode() + b"\n%%EOF\n",
                               name=f"{contract.number}-signed.pdf")
            contract = services.sign_contract(contract, actor=actor, signed_on=dt.date(2024, 1, 16), file=scan)
        contracts.append(contract)
    addendum = services.create_contract(actor=actor, customer=acme, date=dt.date(2024, 6, 1),
                                        type="addendum", title="Second site")
    services.terminate_contract(addendum, actor=actor, reason="Second site not built.")
    services.add_note(maria, actor=actor, text="Prefers calls after 6 pm.")
    services.add_note(acme, actor=actor, text="Invoices go to the billing e-mail only; PO number required.")
    services.attach_file(library, actor=actor, file=ContentFile(b"Tax exemption certificate no. 2024-117\n",
                                                                 name="exemption-certificate.txt"),
                         description="Tax exemption certificate")
    return {"tax_schemes": len(schemes), "customers": len(customers), "contracts": len(contracts) + 1}
