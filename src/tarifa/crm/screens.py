from django.db.models import Case, CharField, F, Func, Value, When
from django.db.models.functions import Concat
from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, register

from . import panels, selectors, services
from .filters import CustomerFilter
from .forms import (AddressForm, AttachmentForm, AuthorisedContactForm, ContactForm, ContractForm, CustomerForm,
                    NoteForm, SignContractForm, TaxSchemeForm, TerminateContractForm)
from .models import Address, Attachment, AuthorisedContact, Contact, Contract, Customer, Note, TaxScheme


def customers_queryset(request=None):
    """Customers with `name` (the display name) and `tag_list` as sortable columns."""
    return Customer.objects.select_related("tax_scheme").annotate(
        name=Case(When(kind=Customer.Kind.ORGANIZATION, then=F("legal_name")),
                  default=Concat(F("first_name"), Value(" "), F("last_name")), output_field=CharField()),
        tag_list=Func(F("tags"), Value(", "), function="array_to_string", output_field=CharField()),
    )


def _create_customer(*, actor, email="", phone="", **data):
    contacts = []
    if email:
        contacts.append({"kind": Contact.Kind.EMAIL, "value": email, "is_preferred": True})
    if phone:
        contacts.append({"kind": Contact.Kind.PHONE, "value": phone, "is_preferred": True})
    return services.create_customer(actor=actor, contacts=contacts, **data)


def _customer_context(request, customer):
    user = request.user
    # Notes and files (their names too) only for who may read them, in the history as well.
    may_read = {"crm.note": user.has_perm("crm.view_note"), "crm.attachment": user.has_perm("crm.view_attachment")}
    return {
        "history": selectors.customer_history(customer, exclude=[t for t, ok in may_read.items() if not ok])[:200],
        "contacts": customer.contacts.filter(archived_at__isnull=True),
        "addresses": customer.addresses.filter(archived_at__isnull=True),
        "authorised_contacts": customer.authorised_contacts.filter(archived_at__isnull=True),
        "contracts": customer.contracts.filter(archived_at__isnull=True).select_related("signed_document"),
        "attachments": customer.attachments.filter(archived_at__isnull=True).select_related("contract")
        if may_read["crm.attachment"] else None,
        "notes": customer.notes.all()[:100] if may_read["crm.note"] else None,
        "panels": panels.panels_for(request, customer),
        "perms_crm": {
            "change_contact": user.has_perm("crm.change_contact"), "delete_contact": user.has_perm("crm.delete_contact"),
            "change_address": user.has_perm("crm.change_address"), "delete_address": user.has_perm("crm.delete_address"),
            "change_authorisedcontact": user.has_perm("crm.change_authorisedcontact"),
            "delete_authorisedcontact": user.has_perm("crm.delete_authorisedcontact"),
            "add_contract": user.has_perm("crm.add_contract"), "view_contract": user.has_perm("crm.view_contract"),
            "view_attachment": user.has_perm("crm.view_attachment"),
            "delete_attachment": user.has_perm("crm.delete_attachment"),
        },
    }


def _on_customer(service):
    """An action handler that adds something to the customer and returns to the customer page."""

    def handler(customer, *, actor, **data):
        service(customer, actor=actor, **data)
        return customer

    return handler


def _sample_file(*args):
    """form_sample of the attach-file actions (the form-submission suite)."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {"file": SimpleUploadedFile("suite-note.txt", b"a note scanned at the desk", "text/plain")}


def _active(customer):
    return customer.status == Customer.Status.ACTIVE and customer.archived_at is None


register(ModelScreens(
    model=Customer, area="Customers",
    columns=["number", "name", "kind", "status", "tax_scheme__code", "tag_list", "created_at"],
    form_class=CustomerForm, create=_create_customer, update=services.update_customer,
    archive=services.archive_customer,
    form_sample=lambda view, obj, user: {"first_name": "Ada", "last_name": "Suite"} if view == "add" else {},
    import_fields=["kind", "first_name", "last_name", "birth_date", "document_type", "document_number",
                   "document_issued_by", "document_issue_date", "legal_name", "tax_id", "registration_number",
                   "registration_date", "legal_address", "tax_scheme", "language", "preferred_channel", "tags",
                   "email", "phone"],
    filterset=CustomerFilter, search=lambda qs, query: selectors.search_customers(query, qs),
    queryset=customers_queryset, ordering=["-created_at"],
    detail_template="crm/customer_detail.html", detail_context=_customer_context,
    actions=[
        Action("add-contact", _("Add phone / e-mail"), "crm.add_contact",
               _on_customer(services.add_contact),
               form_class=ContactForm, available=_active,
               form_sample=lambda obj, user: {"kind": "phone", "value": "+15550177001"}),
        Action("add-address", _("Add address"), "crm.add_address",
               _on_customer(services.add_address),
               form_class=AddressForm, available=_active),
        Action("add-authorised-contact", _("Add authorised person"), "crm.add_authorisedcontact",
               _on_customer(services.add_authorised_contact),
               form_class=AuthorisedContactForm,
               available=lambda c: _active(c) and c.kind == Customer.Kind.ORGANIZATION),
        Action("add-note", _("Add note"), "crm.add_note",
               _on_customer(services.add_note), form_class=NoteForm),
        Action("attach-file", _("Attach file"), "crm.add_attachment",
               _on_customer(services.attach_file),
               form_class=AttachmentForm, form_sample=_sample_file),
    ],
))


def _create_contract(*, actor, customer, **data):
    return services.create_contract(actor=actor, customer=customer, **data)


def _attach_to_contract(contract, *, actor, **data):
    services.attach_file(contract.customer, actor=actor, contract=contract, **data)
    return contract


def _contract_context(request, contract):
    return {"attachments": contract.attachments.filter(archived_at__isnull=True),
            "can_download": request.user.has_perm("crm.view_attachment")}


register(ModelScreens(
    model=Contract, area="Customers",
    columns=["number", "customer__number", "type", "status", "date", "signed_on", "terminated_on"],
    form_class=ContractForm, create=_create_contract, update=services.update_contract,
    archive=services.archive_contract,
    filterset_fields=["status", "type"],
    search_fields=["number", "title", "customer__number", "customer__legal_name", "customer__last_name"],
    ordering=["-date", "-number"],
    detail_fields=["number", "customer", "type", "title", "date", "status", "signed_on", "terminated_on",
                   "signed_document", "created_at"],
    detail_template="crm/contract_detail.html", detail_context=_contract_context,
    editable=lambda k: k.status == Contract.Status.DRAFT,  # a signed contract is changed by a new one
    actions=[
        Action("sign", _("Sign"), "crm.sign_contract",
               lambda k, *, actor, **data: services.sign_contract(k, actor=actor, **data),
               form_class=SignContractForm, available=lambda k: k.status == Contract.Status.DRAFT),
        Action("terminate", _("Terminate"), "crm.terminate_contract",
               lambda k, *, actor, **data: services.terminate_contract(k, actor=actor, **data),
               form_class=TerminateContractForm, danger=True,
               confirm=_("The contract ends on the date given (today when empty) and cannot be reopened; the "
                         "reason stays in its history. The customer's services are not terminated by this."),
               available=lambda k: k.status != Contract.Status.TERMINATED),
        Action("attach-file", _("Attach file"), "crm.add_attachment",
               _attach_to_contract,
               form_class=AttachmentForm, form_sample=_sample_file),
    ],
))

register(ModelScreens(
    model=TaxScheme, area="Customers", columns=["code", "name", "exempt", "exempt_tax_codes"],
    form_class=TaxSchemeForm, create=services.create_tax_scheme, update=services.update_tax_scheme,
    archive=services.archive_tax_scheme, search_fields=["code", "name"], ordering=["code"],
))

# What is kept about a customer: added from the customer page, edited and archived here.
SUB_DETAIL = "crm/customer_part_detail.html"

register(ModelScreens(
    model=Contact, area="Customers", menu=False,
    columns=["value", "kind", "label", "is_preferred", "customer__number"],
    form_class=ContactForm, update=services.update_contact, archive=services.remove_contact,
    filterset_fields=["kind"], search_fields=["value", "customer__number"], ordering=["customer__number", "kind"],
    detail_template=SUB_DETAIL,
))
register(ModelScreens(
    model=Address, area="Customers", menu=False,
    columns=["line1", "city", "postcode", "country", "kind", "customer__number"],
    form_class=AddressForm, update=services.update_address, archive=services.remove_address,
    filterset_fields=["kind", "country"], search_fields=["line1", "city", "postcode", "customer__number"],
    ordering=["customer__number", "kind"], detail_template=SUB_DETAIL,
))
register(ModelScreens(
    model=AuthorisedContact, area="Customers", menu=False,
    columns=["name", "position", "phone", "email", "customer__number"],
    form_class=AuthorisedContactForm, update=services.update_authorised_contact,
    archive=services.remove_authorised_contact,
    search_fields=["name", "phone", "email", "customer__number"], ordering=["customer__number", "name"],
    detail_template=SUB_DETAIL,
))
register(ModelScreens(
    model=Note, area="Customers", menu=False,
    columns=["created_at", "customer__number", "author_label", "text"],
    search_fields=["text", "customer__number"], ordering=["-created_at"], detail_template=SUB_DETAIL,
))
register(ModelScreens(
    model=Attachment, area="Customers", menu=False,
    columns=["filename", "content_type", "size", "customer__number", "contract__number", "created_at"],
    archive=services.remove_attachment, filterset_fields=["content_type"],
    search_fields=["filename", "description", "customer__number"], ordering=["-created_at"],
    detail_fields=["filename", "description", "content_type", "size", "sha256", "customer", "contract",
                   "uploaded_by", "created_at"],
    detail_template="crm/attachment_detail.html",
))
