"""Customers and their contacts, addresses, contracts, notes and files: the only write path.

Every function takes keyword arguments and an `actor`, runs in one transaction, writes
an audit event for each record it touches (`tarifa.audit.services`), and raises a
`DomainError` with a stable code when it refuses; a refusal writes nothing.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import Conflict, DomainError, ValidationFailed
from tarifa.kernel.numbering import next_number

from . import files, search
from .models import Address, Attachment, AuthorisedContact, Contact, Contract, Customer, Note, SearchTerm, TaxScheme

CUSTOMER_SERIES = "C"
CONTRACT_SERIES = "K"
DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024

INDIVIDUAL_FIELDS = ("first_name", "last_name", "birth_date", "document_type", "document_number",
                     "document_issued_by", "document_issue_date")
ORGANIZATION_FIELDS = ("legal_name", "registration_number", "registration_date", "legal_address")
REQUIRED_BY_KIND = {
    Customer.Kind.INDIVIDUAL: ("first_name", "last_name"),
    Customer.Kind.ORGANIZATION: ("legal_name", "tax_id"),
}
CUSTOMER_FIELDS = {f.name for f in Customer._meta.concrete_fields if f.editable} - {"id", "branch"}


def max_attachment_bytes() -> int:
    return int(getattr(settings, "TARIFA_MAX_ATTACHMENT_BYTES", DEFAULT_MAX_ATTACHMENT_BYTES))


def default_tax_scheme() -> TaxScheme | None:
    """The scheme new customers get when none is given (setting TARIFA_DEFAULT_TAX_SCHEME, "standard")."""
    code = getattr(settings, "TARIFA_DEFAULT_TAX_SCHEME", "standard")
    return TaxScheme.objects.filter(code=code, archived_at__isnull=True).first() if code else None


# --- normalisation -------------------------------------------------------------------

def normalize_tags(tags) -> list[str]:
    if isinstance(tags, str):
        tags = tags.split(",")
    seen = []
    for tag in tags or ():
        tag = str(tag).strip().lower()
        if tag and tag not in seen:
            seen.append(tag)
    return sorted(seen)


def normalize_phone(value: str) -> str:
    """`+1 (555) 010-0200` → `+15550100200`: stored as digits so search finds any spelling."""
    raw = (value or "").strip()
    digits = re.sub(r"\D", "", raw)
    if not re.fullmatch(r"\+?[\d\s().\-/]+", raw) or not 5 <= len(digits) <= 20:
        raise ValidationFailed(f"{value!r} is not a phone number.", code="invalid_phone",
                               fields={"value": ["Enter a phone number: digits, optionally a leading +."]})
    return ("+" if raw.startswith("+") else "") + digits


def normalize_contact_value(kind: str, value: str) -> str:
    if kind == Contact.Kind.PHONE:
        return normalize_phone(value)
    if kind == Contact.Kind.EMAIL:
        value = (value or "").strip()
        try:
            validate_email(value)
        except ValidationError:
            raise ValidationFailed(f"{value!r} is not an e-mail address.", code="invalid_email",
                                   fields={"value": ["Enter a valid e-mail address."]}) from None
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"
    raise ValidationFailed(f"Unknown contact kind {kind!r}.", code="invalid_contact_kind",
                           fields={"kind": [f"Choose one of: {', '.join(Contact.Kind.values)}."]})


def _blank_for_none(model, fields: dict) -> dict:
    """Text fields hold "" rather than NULL: an API client's null means empty."""
    text = {f.name for f in model._meta.concrete_fields if not f.null}
    return {k: ("" if v is None and k in text and k != "tax_scheme" else v) for k, v in fields.items()}


def _strip(fields: dict) -> dict:
    return {k: v.strip() if isinstance(v, str) else v for k, v in fields.items()}


def _check_customer_fields(kind: str, values: dict) -> None:
    """Kind-specific rules: who must have which fields, and which fields belong to the other kind."""
    if kind not in Customer.Kind.values:
        raise ValidationFailed(f"Unknown customer kind {kind!r}.", code="invalid_kind",
                               fields={"kind": [f"Choose one of: {', '.join(Customer.Kind.values)}."]})
    missing = [name for name in REQUIRED_BY_KIND[kind] if not values.get(name)]
    if missing:
        label = "an individual" if kind == Customer.Kind.INDIVIDUAL else "an organization"
        raise ValidationFailed(
            f"{' and '.join(missing)} required for {label}.", code=f"{kind}_fields_required",
            fields={name: [f"Required for {label}."] for name in missing})
    foreign = ORGANIZATION_FIELDS if kind == Customer.Kind.INDIVIDUAL else INDIVIDUAL_FIELDS
    misplaced = [name for name in foreign if values.get(name)]
    if misplaced:
        raise ValidationFailed(
            f"{', '.join(misplaced)} do not apply to kind {kind}.", code="field_not_for_kind",
            fields={name: [f"Does not apply to kind {kind}."] for name in misplaced})


def _unknown(fields: dict, allowed) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationFailed(f"Unknown fields: {', '.join(unknown)}.", code="unknown_field",
                               fields={name: ["Unknown field."] for name in unknown})


def _require_active(customer: Customer) -> Customer:
    """The customer, re-read and locked (a concurrent close waits for us), if still active."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.status != Customer.Status.ACTIVE or customer.archived_at is not None:
        raise DomainError(f"Customer {customer.number} is closed.", code="customer_closed", status=409)
    return customer


# --- search terms --------------------------------------------------------------------

def search_terms_of(customer: Customer) -> set[str]:
    contacts = list(customer.contacts.filter(archived_at__isnull=True).values_list("kind", "value"))
    people = list(customer.authorised_contacts.filter(archived_at__isnull=True).values_list("name", "phone", "email"))
    return search.customer_terms(
        names=[customer.first_name, customer.last_name, customer.legal_name] + [p[0] for p in people],
        identifiers=[customer.number, customer.tax_id, customer.document_number, customer.registration_number],
        emails=[v for k, v in contacts if k == Contact.Kind.EMAIL] + [p[2] for p in people if p[2]],
        phones=[v for k, v in contacts if k == Contact.Kind.PHONE] + [p[1] for p in people if p[1]],
    )


def reindex_customer(customer: Customer) -> None:
    """Rewrite the customer's search terms from its current profile, contacts and persons."""
    customer = Customer.objects.get(pk=customer.pk)
    SearchTerm.objects.filter(customer=customer).delete()
    SearchTerm.objects.bulk_create([SearchTerm(customer=customer, term=t) for t in sorted(search_terms_of(customer))])


def rebuild_search_terms(batch: int = 2000) -> int:
    """Rewrite every customer's search terms (after a bulk load or a change of the rules)."""
    count = 0
    for pk in Customer.objects.values_list("pk", flat=True).iterator(chunk_size=batch):
        with transaction.atomic():
            reindex_customer(Customer(pk=pk))
        count += 1
    return count


# --- tax schemes ---------------------------------------------------------------------

@transaction.atomic
def create_tax_scheme(*, actor, code: str, name: str, exempt: bool = False, exempt_tax_codes=(),
                      description: str = "") -> TaxScheme:
    """A tax scheme; `code` is unique (refused with `duplicate_tax_scheme`)."""
    code = (code or "").strip()
    if TaxScheme.objects.filter(code=code).exists():
        raise ValidationFailed(f"Tax scheme {code!r} already exists.", code="duplicate_tax_scheme",
                               fields={"code": ["A tax scheme with this code already exists."]})
    return recorded.create(TaxScheme, actor=actor, code=code, name=name.strip(), exempt=exempt,
                           exempt_tax_codes=sorted({c.strip() for c in exempt_tax_codes if c.strip()}),
                           description=description)


@transaction.atomic
def update_tax_scheme(scheme: TaxScheme, *, actor, **changes) -> TaxScheme:
    _unknown(changes, {"code", "name", "exempt", "exempt_tax_codes", "description"})
    if "code" in changes and changes["code"] != scheme.code:
        raise ValidationFailed("A tax scheme's code cannot change: billing and branches refer to it.",
                               code="tax_scheme_code_immutable", fields={"code": ["Cannot be changed."]})
    if "exempt_tax_codes" in changes:
        changes["exempt_tax_codes"] = sorted({c.strip() for c in changes["exempt_tax_codes"] or () if c.strip()})
    return recorded.update(scheme, actor=actor, **changes)


@transaction.atomic
def archive_tax_scheme(scheme: TaxScheme, *, actor, reason: str = "") -> TaxScheme:
    """Refused with `tax_scheme_in_use` while an active customer has the scheme."""
    in_use = scheme.customers.filter(status=Customer.Status.ACTIVE).count()
    if in_use:
        raise Conflict(f"{in_use} active customers use tax scheme {scheme.code}.", code="tax_scheme_in_use")
    return recorded.archive(scheme, actor=actor, reason=reason)


# --- customers -----------------------------------------------------------------------

@transaction.atomic
def create_customer(*, actor, kind: str, contacts=(), addresses=(), authorised_contacts=(), **fields) -> Customer:
    """Register a customer of `kind` ("individual" or "organization") with the next `C` number.

    An individual needs first_name and last_name (`individual_fields_required`); an
    organization needs legal_name and tax_id (`organization_fields_required`). Fields of
    the other kind are refused (`field_not_for_kind`). `tax_scheme` defaults to the
    scheme named by TARIFA_DEFAULT_TAX_SCHEME ("standard") when it exists. `contacts`,
    `addresses` and `authorised_contacts` are lists of dicts taken by add_contact,
    add_address and add_authorised_contact. One transaction: all or nothing. Audited
    ("create" on every record).
    """
    _unknown(fields, CUSTOMER_FIELDS - {"kind", "number", "status"})
    fields = _strip(fields)
    fields["tags"] = normalize_tags(fields.get("tags"))
    if fields.get("tax_scheme") is None:
        fields["tax_scheme"] = default_tax_scheme()
    _check_customer_fields(kind, fields)
    fields = _blank_for_none(Customer, fields)
    customer = recorded.create(Customer, actor=actor, kind=kind, number=next_number(CUSTOMER_SERIES), **fields)
    for contact in contacts or ():
        add_contact(customer, actor=actor, **contact)
    for address in addresses or ():
        add_address(customer, actor=actor, **address)
    for person in authorised_contacts or ():
        add_authorised_contact(customer, actor=actor, **person)
    reindex_customer(customer)
    return customer


@transaction.atomic
def update_customer(customer: Customer, *, actor, **changes) -> Customer:
    """Change a customer's profile. The kind cannot change (`kind_change_not_allowed`);
    the kind rules of create_customer apply to the result. Closed customers are refused
    (`archived`). Audited with the changed fields."""
    _unknown(changes, CUSTOMER_FIELDS - {"number", "status"})
    kind = changes.pop("kind", customer.kind)
    if kind != customer.kind:
        raise ValidationFailed("A customer's kind cannot change; register a new customer instead.",
                               code="kind_change_not_allowed", fields={"kind": ["Cannot be changed."]})
    changes = _blank_for_none(Customer, _strip(changes))
    if "tags" in changes:
        changes["tags"] = normalize_tags(changes["tags"])
    merged = {name: getattr(customer, name) for name in CUSTOMER_FIELDS} | changes
    _check_customer_fields(customer.kind, merged)
    customer = recorded.update(customer, actor=actor, **changes)
    reindex_customer(customer)
    return customer


def closing_blockers(customer: Customer) -> list[str]:
    """Why the customer cannot be closed yet (empty: it can). Signed contracts must be
    terminated first."""
    blockers = []
    live = list(customer.contracts.filter(status=Contract.Status.SIGNED, archived_at__isnull=True)
                .values_list("number", flat=True))
    if live:
        blockers.append(f"signed contracts {', '.join(live)} must be terminated first")
    return blockers


@transaction.atomic
def archive_customer(customer: Customer, *, actor, reason: str = "") -> Customer:
    """Close the customer: status closed and archived, with the reason. Refused with
    `customer_has_live_contracts` (409) while a contract is signed and not terminated,
    and `already_archived` when closed already. Audited ("close")."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.archived_at is not None:
        raise DomainError(f"Customer {customer.number} is already closed.", code="already_archived", status=409)
    blockers = closing_blockers(customer)
    if blockers:
        raise Conflict(f"Customer {customer.number} cannot be closed: {'; '.join(blockers)}.",
                       code="customer_has_live_contracts")
    before = recorded.snapshot(customer)
    customer.status = Customer.Status.CLOSED
    customer.archived_at = now()
    customer.updated_at = customer.archived_at
    customer.save(update_fields=["status", "archived_at", "updated_at"])
    recorded.record(customer, actor=actor, action="close", changes=recorded.diff(before, recorded.snapshot(customer)),
                    message=reason)
    return customer


# --- contacts, addresses, authorised contacts ---------------------------------------

def _unset_other_preferred(contact: Contact, *, actor) -> None:
    others = Contact.objects.filter(customer_id=contact.customer_id, kind=contact.kind, is_preferred=True,
                                    archived_at__isnull=True).exclude(pk=contact.pk)
    for other in others:
        recorded.update(other, actor=actor, is_preferred=False)


@transaction.atomic
def add_contact(customer: Customer, *, actor, kind: str, value: str, label: str = "",
                is_preferred: bool = False) -> Contact:
    """Add a phone (stored as digits, `+` kept) or e-mail. At most one preferred contact
    per kind: marking this one preferred unmarks the other. Refused on closed customers
    (`customer_closed`) and for a duplicate active value (`duplicate_contact`)."""
    customer = _require_active(customer)
    value = normalize_contact_value(kind, value)
    if Contact.objects.filter(customer=customer, kind=kind, value__iexact=value, archived_at__isnull=True).exists():
        raise ValidationFailed(f"{customer.number} already has {value}.", code="duplicate_contact",
                               fields={"value": ["This customer already has this contact."]})
    contact = recorded.create(Contact, actor=actor, customer=customer, kind=kind, value=value,
                              label=(label or "").strip(), is_preferred=bool(is_preferred))
    if contact.is_preferred:
        _unset_other_preferred(contact, actor=actor)
    reindex_customer(customer)
    return contact


@transaction.atomic
def update_contact(contact: Contact, *, actor, **changes) -> Contact:
    _unknown(changes, {"kind", "value", "label", "is_preferred", "customer"})
    if changes.pop("customer", contact.customer) != contact.customer:
        raise ValidationFailed("A contact cannot move to another customer.", code="customer_immutable",
                               fields={"customer": ["Cannot be changed."]})
    _require_active(contact.customer)
    kind = changes.get("kind", contact.kind)
    if "value" in changes or "kind" in changes:
        changes["value"] = normalize_contact_value(kind, changes.get("value", contact.value))
    contact = recorded.update(contact, actor=actor, **changes)
    if contact.is_preferred:
        _unset_other_preferred(contact, actor=actor)
    reindex_customer(contact.customer)
    return contact


@transaction.atomic
def remove_contact(contact: Contact, *, actor, reason: str = "") -> Contact:
    """Archive the contact: it stays in the history, no longer used, shown or searched."""
    contact = recorded.archive(contact, actor=actor, reason=reason)
    reindex_customer(contact.customer)
    return contact


ADDRESS_FIELDS = {"kind", "line1", "line2", "city", "postcode", "region", "country"}


@transaction.atomic
def add_address(customer: Customer, *, actor, kind: str, line1: str, city: str, country: str, line2: str = "",
                postcode: str = "", region: str = "") -> Address:
    """Add a service, billing, legal or postal address; `country` is an ISO 3166 alpha-2 code."""
    customer = _require_active(customer)
    fields = _strip({"kind": kind, "line1": line1, "line2": line2, "city": city, "postcode": postcode,
                     "region": region, "country": (country or "").strip().upper()})
    return recorded.create(Address, actor=actor, customer=customer, **fields)


@transaction.atomic
def update_address(address: Address, *, actor, **changes) -> Address:
    _unknown(changes, ADDRESS_FIELDS | {"customer"})
    if changes.pop("customer", address.customer) != address.customer:
        raise ValidationFailed("An address cannot move to another customer.", code="customer_immutable",
                               fields={"customer": ["Cannot be changed."]})
    _require_active(address.customer)
    changes = _strip(changes)
    if "country" in changes:
        changes["country"] = (changes["country"] or "").upper()
    return recorded.update(address, actor=actor, **changes)


@transaction.atomic
def remove_address(address: Address, *, actor, reason: str = "") -> Address:
    return recorded.archive(address, actor=actor, reason=reason)


AUTHORISED_FIELDS = {"name", "position", "phone", "email", "authority"}


@transaction.atomic
def add_authorised_contact(customer: Customer, *, actor, name: str, position: str = "", phone: str = "",
                           email: str = "", authority: str = "") -> AuthorisedContact:
    """A person who may act for an organization (refused for individuals: `not_an_organization`)."""
    customer = _require_active(customer)
    if customer.kind != Customer.Kind.ORGANIZATION:
        raise ValidationFailed("Only organizations have authorised contacts.", code="not_an_organization")
    fields = _strip({"name": name, "position": position, "phone": phone, "email": email, "authority": authority})
    if fields["phone"]:
        fields["phone"] = normalize_phone(fields["phone"])
    person = recorded.create(AuthorisedContact, actor=actor, customer=customer, **fields)
    reindex_customer(customer)
    return person


@transaction.atomic
def update_authorised_contact(person: AuthorisedContact, *, actor, **changes) -> AuthorisedContact:
    changes.pop("customer", None)
    _unknown(changes, AUTHORISED_FIELDS)
    _require_active(person.customer)
    changes = _strip(changes)
    if changes.get("phone"):
        changes["phone"] = normalize_phone(changes["phone"])
    person = recorded.update(person, actor=actor, **changes)
    reindex_customer(person.customer)
    return person


@transaction.atomic
def remove_authorised_contact(person: AuthorisedContact, *, actor, reason: str = "") -> AuthorisedContact:
    person = recorded.archive(person, actor=actor, reason=reason)
    reindex_customer(person.customer)
    return person


# --- contracts -----------------------------------------------------------------------

CONTRACT_FIELDS = {"date", "type", "title"}


@transaction.atomic
def create_contract(*, actor, customer: Customer, date=None, type: str = Contract.Type.SERVICE_AGREEMENT,
                    title: str = "") -> Contract:
    """A draft contract with the next `K` number, dated today unless `date` is given.
    Refused for closed customers (`customer_closed`)."""
    customer = _require_active(customer)
    return recorded.create(Contract, actor=actor, customer=customer, number=next_number(CONTRACT_SERIES),
                           date=date or today(), type=type, title=(title or "").strip())


@transaction.atomic
def update_contract(contract: Contract, *, actor, **changes) -> Contract:
    """Only drafts change (`contract_not_draft`); a signed contract is changed by an addendum."""
    if changes.pop("customer", contract.customer) != contract.customer:
        raise ValidationFailed("A contract cannot move to another customer.", code="customer_immutable",
                               fields={"customer": ["Cannot be changed."]})
    _unknown(changes, CONTRACT_FIELDS)
    if contract.status != Contract.Status.DRAFT:
        raise Conflict(f"Contract {contract.number} is {contract.status}; only drafts can be edited.",
                       code="contract_not_draft")
    return recorded.update(contract, actor=actor, **changes)


@transaction.atomic
def sign_contract(contract: Contract, *, actor, signed_on=None, file=None, document: Attachment | None = None,
                  note: str = "") -> Contract:
    """Mark a draft contract signed (`contract_not_draft` otherwise), on `signed_on` (today
    by default). The signed scan is either an uploaded `file` (stored as the contract's
    attachment) or an existing attachment `document` of the same customer. Audited ("sign")."""
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if contract.status != Contract.Status.DRAFT:
        raise Conflict(f"Contract {contract.number} is {contract.status}, not a draft.", code="contract_not_draft")
    _require_active(contract.customer)
    signed_on = signed_on or today()
    if signed_on < contract.date:
        raise ValidationFailed("A contract cannot be signed before its date.", code="signed_before_date",
                               fields={"signed_on": [f"On or after {contract.date}."]})
    if document is not None and document.customer_id != contract.customer_id:
        raise ValidationFailed("The signed document belongs to another customer.", code="document_of_other_customer",
                               fields={"document": ["Not an attachment of this customer."]})
    if file is not None:
        document = attach_file(contract.customer, actor=actor, file=file, contract=contract,
                               description=f"Signed {contract.number}")
    return recorded.update(contract, actor=actor, action="sign", message=note, status=Contract.Status.SIGNED,
                           signed_on=signed_on, signed_document=document)


@transaction.atomic
def terminate_contract(contract: Contract, *, actor, reason: str, terminated_on=None) -> Contract:
    """End a draft or signed contract (`contract_already_terminated` twice), with a reason
    (`reason_required`). Audited ("terminate")."""
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if contract.status == Contract.Status.TERMINATED:
        raise Conflict(f"Contract {contract.number} is already terminated.", code="contract_already_terminated")
    if not (reason or "").strip():
        raise ValidationFailed("Say why the contract is terminated.", code="reason_required",
                               fields={"reason": ["This field is required."]})
    return recorded.update(contract, actor=actor, action="terminate", message=reason.strip(),
                           status=Contract.Status.TERMINATED, terminated_on=terminated_on or today())


@transaction.atomic
def archive_contract(contract: Contract, *, actor, reason: str = "") -> Contract:
    """Hide a draft or terminated contract; a signed one must be terminated first (`contract_signed`)."""
    if contract.status == Contract.Status.SIGNED:
        raise Conflict(f"Contract {contract.number} is signed; terminate it first.", code="contract_signed")
    return recorded.archive(contract, actor=actor, reason=reason)


# --- notes ---------------------------------------------------------------------------

@transaction.atomic
def add_note(customer: Customer, *, actor, text: str) -> Note:
    """Append a note to the customer (closed customers too). Notes are never edited or deleted."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("A note needs text.", code="note_empty", fields={"text": ["This field is required."]})
    author = actor if getattr(actor, "pk", None) and not isinstance(actor, str) else None
    return recorded.create(Note, actor=actor, customer=customer, text=text, author=author,
                           author_label=recorded.actor_label(actor)[:150])


# --- attachments ---------------------------------------------------------------------

def _refuse_file(message: str, code: str, status: int = 400):
    raise ValidationFailed(message, code=code, fields={"file": [message]}, status=status)


@transaction.atomic
def attach_file(customer: Customer, *, actor, file, contract: Contract | None = None,
                description: str = "") -> Attachment:
    """Store an uploaded file (Django `File`/`UploadedFile`) for the customer, optionally
    for one of its contracts, through the default storage.

    Refused, with nothing stored: larger than TARIFA_MAX_ATTACHMENT_BYTES
    (`attachment_too_large`, 413), empty (`attachment_empty`), content that is not PDF,
    PNG, JPEG, TIFF or UTF-8 plain text by its magic bytes (`attachment_type_not_allowed`),
    an extension that claims another type than the content (`attachment_type_mismatch`),
    a contract of another customer (`contract_of_other_customer`). Audited ("create").
    """
    limit = max_attachment_bytes()
    if file is None:
        _refuse_file("No file was uploaded.", "attachment_missing")
    if file.size is not None and file.size > limit:
        _refuse_file(f"The file is {file.size} bytes; at most {limit} are accepted.", "attachment_too_large", 413)
    if contract is not None and contract.customer_id != customer.pk:
        raise ValidationFailed("The contract belongs to another customer.", code="contract_of_other_customer",
                               fields={"contract": ["Not a contract of this customer."]})
    filename = files.clean_filename(getattr(file, "name", "") or "")
    file.seek(0)
    sniffed = files.sniff(file.chunks())
    file.seek(0)
    if sniffed.size == 0:
        _refuse_file("The file is empty.", "attachment_empty")
    if sniffed.size > limit:
        _refuse_file(f"The file is {sniffed.size} bytes; at most {limit} are accepted.", "attachment_too_large", 413)
    if sniffed.content_type is None:
        _refuse_file("Only PDF, PNG, JPEG, TIFF and plain text files are accepted; this file is none of these.",
                     "attachment_type_not_allowed", 415)
    claimed = files.claimed_type(filename)
    if claimed is not None and claimed != sniffed.content_type:
        _refuse_file(f"The file name says {claimed} but the content is {sniffed.content_type}.",
                     "attachment_type_mismatch", 415)
    if claimed is None:
        ext = {v: k for k, v in reversed(files.EXTENSIONS.items())}[sniffed.content_type]
        filename = filename + ext
    attachment = Attachment(customer=customer, contract=contract, filename=filename,
                            content_type=sniffed.content_type, size=sniffed.size, sha256=sniffed.sha256,
                            description=(description or "").strip(), uploaded_by=recorded.actor_label(actor)[:150])
    attachment.file.save(attachment.id.hex, file, save=False)
    try:
        recorded.validate(attachment)
        attachment.save(force_insert=True)
        recorded.record(attachment, actor=actor, action="create",
                        changes=recorded.diff({}, recorded.snapshot(attachment)))
    except BaseException:
        attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


@transaction.atomic
def remove_attachment(attachment: Attachment, *, actor, reason: str = "") -> Attachment:
    """Archive the attachment: no longer listed; the file is kept (it is evidence).
    A contract's signed document cannot be removed (`attachment_is_signed_document`)."""
    if Contract.objects.filter(signed_document=attachment).exists():
        raise Conflict("This file is a contract's signed document.", code="attachment_is_signed_document")
    return recorded.archive(attachment, actor=actor, reason=reason)
