"""Reads about customers that screens, the API and other apps use."""

from django.db.models import Q, QuerySet

from tarifa.audit.models import AuditEvent

from . import search
from .models import Address, Attachment, AuthorisedContact, Contact, Contract, Customer, Note, SearchTerm

def _having_term(prefix: str) -> QuerySet:
    return SearchTerm.objects.filter(term__startswith=prefix).values("customer_id")


def search_customers(query: str, queryset: QuerySet | None = None) -> QuerySet:
    """Customers matching `query` by name, number, phone, e-mail, document number or tax id.

    Every word of the query must begin one of the customer's words ("mar garc" finds Maria
    Garcia, "logistics" finds Acme Logistics LLC, "77777" finds HQ-C0077777); a query that
    looks like a phone number finds the phones ending with its digits, whatever their
    spelling ("555 010-0101" finds +15550100101). Each customer appears once, in the order
    of `queryset` (default: all customers). Uses the indexed terms of `crm.SearchTerm`.
    """
    queryset = Customer.objects.all() if queryset is None else queryset
    words = search.query_words(query)
    if not words:
        return queryset if not (query or "").strip() else queryset.none()
    by_words = Q()
    for word in words:
        by_words &= Q(pk__in=_having_term(word))
    phone = search.phone_prefix(query)
    return queryset.filter(by_words | Q(pk__in=_having_term(phone)) if phone else by_words)


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


def customer_history(customer: Customer, *, exclude=()) -> QuerySet:
    """The audit trail of the customer and everything kept about it, newest first; without the
    events of the object types in `exclude` (e.g. "crm.note" for a user who may not read notes)."""
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
        if object_type in exclude:
            continue
        ids = [str(pk) for pk in qs.values_list("pk", flat=True)]
        if ids:
            cond |= Q(object_type=object_type, object_id__in=ids)
    return AuditEvent.objects.filter(cond).select_related("actor").order_by("-at", "-id")
