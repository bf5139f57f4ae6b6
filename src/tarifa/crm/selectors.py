"""Reads about customers that screens, the API and other apps use."""

import re

from django.db.models import Q, QuerySet

from tarifa.audit.models import AuditEvent

from .models import Address, Attachment, AuthorisedContact, Contact, Contract, Customer, Note

# Matched with icontains, every word of the query against any of them.
TEXT_FIELDS = ("number", "first_name", "last_name", "legal_name", "tax_id", "document_number",
               "registration_number", "contacts__value", "authorised_contacts__name")


def search_customers(query: str, queryset: QuerySet | None = None) -> QuerySet:
    """Customers matching `query` by name, number, phone, e-mail, document number or tax id.

    Every word must match some field ("john smith" finds John Smith); a query that looks
    like a phone number also matches stored phones whatever its spacing or punctuation
    ("+1 (555) 010-0200" finds +15550100200). Each customer appears once, in the order of
    `queryset` (default: all customers).
    """
    queryset = Customer.objects.all() if queryset is None else queryset
    query = (query or "").strip()
    if not query:
        return queryset
    cond = Q()
    for word in query.split():
        word_cond = Q()
        for field in TEXT_FIELDS:
            word_cond |= Q(**{f"{field}__icontains": word})
        cond &= word_cond
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4 and re.fullmatch(r"\+?[\d\s().\-/]+", query):
        cond |= Q(contacts__kind=Contact.Kind.PHONE, contacts__value__contains=digits)
        cond |= Q(authorised_contacts__phone__contains=digits)
    # A subquery, not DISTINCT: joins through contacts would repeat customers, and
    # DISTINCT would fight with the caller's ordering.
    return queryset.filter(pk__in=Customer.objects.filter(cond).values("pk"))


def active_contacts(customer: Customer) -> QuerySet:
    return customer.contacts.filter(archived_at__isnull=True)


def preferred_contact(customer: Customer, kind: str) -> Contact | None:
    """The contact of `kind` to use for notifications: the preferred one, else the oldest."""
    return active_contacts(customer).filter(kind=kind).order_by("-is_preferred", "created_at").first()


def billing_address(customer: Customer) -> Address | None:
    """The billing address, else the legal one, else any active address."""
    order = {Address.Kind.BILLING: 0, Address.Kind.LEGAL: 1, Address.Kind.POSTAL: 2, Address.Kind.SERVICE: 3}
    addresses = sorted(customer.addresses.filter(archived_at__isnull=True), key=lambda a: (order[a.kind], a.created_at))
    return addresses[0] if addresses else None


def customer_history(customer: Customer) -> QuerySet:
    """The audit trail of the customer and everything kept about it, newest first."""
    related = {
        "crm.contact": Contact.objects.filter(customer=customer),
        "crm.address": Address.objects.filter(customer=customer),
        "crm.authorisedcontact": AuthorisedContact.objects.filter(customer=customer),
        "crm.contract": Contract.objects.filter(customer=customer),
        "crm.note": Note.objects.filter(customer=customer),
        "crm.attachment": Attachment.objects.filter(customer=customer),
    }
    cond = Q(object_type="crm.customer", object_id=str(customer.pk))
    for object_type, qs in related.items():
        ids = [str(pk) for pk in qs.values_list("pk", flat=True)]
        if ids:
            cond |= Q(object_type=object_type, object_id__in=ids)
    return AuditEvent.objects.filter(cond).select_related("actor").order_by("-at", "-id")
