"""Customers and what the operator keeps about them.

A customer is an individual or an organization; everything else here (contacts,
addresses, contracts, notes, attachments) hangs off a customer. Records are archived,
never deleted; notes are append-only.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.models import Archivable, BusinessRecord

country_code = RegexValidator(r"^[A-Z]{2}$", _("Use a two-letter ISO 3166 country code, e.g. US."))
tax_code = RegexValidator(r"^[A-Za-z0-9_.-]+$", _("Letters, digits, dot, dash and underscore only."))


class TaxScheme(BusinessRecord, Archivable):
    """Which taxes apply to a customer. Billing reads it: `applies(tax_code)`."""

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[tax_code])
    name = models.CharField(_("name"), max_length=100)
    exempt = models.BooleanField(_("exempt from all taxes"), default=False)
    exempt_tax_codes = ArrayField(models.CharField(max_length=32), blank=True, default=list,
                                  verbose_name=_("exempt tax codes"),
                                  help_text=_("Taxes that do not apply under this scheme (catalog tax codes)."))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("tax scheme")
        verbose_name_plural = _("tax schemes")
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} — {self.name}"

    def applies(self, tax_code: str) -> bool:
        """Whether the tax `tax_code` is charged to customers under this scheme."""
        return not self.exempt and tax_code not in self.exempt_tax_codes


class Customer(BusinessRecord, Archivable):
    class Kind(models.TextChoices):
        INDIVIDUAL = "individual", _("Individual")
        ORGANIZATION = "organization", _("Organization")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CLOSED = "closed", _("Closed")

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        SMS = "sms", _("SMS")
        PHONE = "phone", _("Phone")
        POST = "post", _("Post")

    class DocumentType(models.TextChoices):
        PASSPORT = "passport", _("Passport")
        NATIONAL_ID = "national_id", _("National identity card")
        DRIVING_LICENCE = "driving_licence", _("Driving licence")
        RESIDENCE_PERMIT = "residence_permit", _("Residence permit")
        OTHER = "other", _("Other")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE,
                              editable=False, db_index=True)
    # Individual
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    document_type = models.CharField(_("identity document type"), max_length=32, choices=DocumentType.choices,
                                     blank=True)
    document_number = models.CharField(_("identity document number"), max_length=64, blank=True)
    document_issued_by = models.CharField(_("document issued by"), max_length=200, blank=True)
    document_issue_date = models.DateField(_("document issue date"), null=True, blank=True)
    # Organization
    legal_name = models.CharField(_("legal name"), max_length=255, blank=True)
    tax_id = models.CharField(_("tax id"), max_length=64, blank=True)
    registration_number = models.CharField(_("registration number"), max_length=64, blank=True)
    registration_date = models.DateField(_("registration date"), null=True, blank=True)
    legal_address = models.TextField(_("legal address"), blank=True)
    # Common
    tax_scheme = models.ForeignKey(TaxScheme, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="customers", verbose_name=_("tax scheme"))
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES,
                                default=settings.LANGUAGE_CODE)
    preferred_channel = models.CharField(_("preferred contact channel"), max_length=8, choices=Channel.choices,
                                         default=Channel.EMAIL)
    tags = ArrayField(models.CharField(max_length=50), blank=True, default=list, verbose_name=_("tags"))

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["number"]
        indexes = [
            models.Index(Upper("tax_id"), name="crm_customer_tax_id_idx"),
            models.Index(Upper("document_number"), name="crm_customer_document_idx"),
            models.Index(Upper("last_name"), name="crm_customer_last_name_idx"),
        ]

    def __str__(self):
        return f"{self.number} {self.display_name}".strip()

    @property
    def display_name(self) -> str:
        if self.kind == self.Kind.ORGANIZATION:
            return self.legal_name
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class AuthorisedContact(BusinessRecord, Archivable):
    """A person who may act for an organization (sign, order, ask about the account)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="authorised_contacts",
                                 verbose_name=_("customer"))
    name = models.CharField(_("name"), max_length=200)
    position = models.CharField(_("role / position"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=50, blank=True)
    email = models.EmailField(_("e-mail"), blank=True)
    authority = models.TextField(_("authority / notes"), blank=True)

    class Meta:
        verbose_name = _("authorised contact")
        verbose_name_plural = _("authorised contacts")
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.position})" if self.position else self.name


class Contact(BusinessRecord, Archivable):
    """A phone number or e-mail address of a customer. Removing one archives it."""

    class Kind(models.TextChoices):
        PHONE = "phone", _("Phone")
        EMAIL = "email", _("E-mail")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contacts",
                                 verbose_name=_("customer"))
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    value = models.CharField(_("value"), max_length=254)
    label = models.CharField(_("label"), max_length=50, blank=True, help_text=_("e.g. home, work, billing"))
    is_preferred = models.BooleanField(_("preferred"), default=False)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["kind", "-is_preferred", "created_at"]
        indexes = [models.Index(Upper("value"), name="crm_contact_value_idx")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.value}"


class Address(BusinessRecord, Archivable):
    class Kind(models.TextChoices):
        SERVICE = "service", _("Service")
        BILLING = "billing", _("Billing")
        LEGAL = "legal", _("Legal")
        POSTAL = "postal", _("Postal")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="addresses",
                                 verbose_name=_("customer"))
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    line1 = models.CharField(_("address line 1"), max_length=200)
    line2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=100)
    postcode = models.CharField(_("postcode"), max_length=20, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=2, validators=[country_code])

    class Meta:
        verbose_name = _("address")
        verbose_name_plural = _("addresses")
        ordering = ["kind", "created_at"]

    def __str__(self):
        return ", ".join(p for p in [self.line1, self.line2, self.postcode, self.city, self.region, self.country] if p)


class Contract(BusinessRecord, Archivable):
    """An agreement with a customer: drafted, signed (with the signed scan), terminated."""

    class Type(models.TextChoices):
        SERVICE_AGREEMENT = "service_agreement", _("Service agreement")
        ADDENDUM = "addendum", _("Addendum")
        EQUIPMENT_LEASE = "equipment_lease", _("Equipment lease")
        FRAMEWORK = "framework", _("Framework agreement")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SIGNED = "signed", _("Signed")
        TERMINATED = "terminated", _("Terminated")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="contracts",
                                 verbose_name=_("customer"))
    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    date = models.DateField(_("date"))
    type = models.CharField(_("type"), max_length=32, choices=Type.choices, default=Type.SERVICE_AGREEMENT)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT,
                              editable=False)
    title = models.CharField(_("title"), max_length=200, blank=True)
    signed_on = models.DateField(_("signed on"), null=True, blank=True, editable=False)
    terminated_on = models.DateField(_("terminated on"), null=True, blank=True, editable=False)
    signed_document = models.ForeignKey("Attachment", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", editable=False, verbose_name=_("signed document"))

    class Meta:
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        ordering = ["-date", "number"]
        permissions = [
            ("sign_contract", _("Can mark contracts signed")),
            ("terminate_contract", _("Can terminate contracts")),
        ]

    def __str__(self):
        return self.number


class Note(BusinessRecord):
    """A free note on a customer. Append-only: never edited or deleted."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="notes",
                                 verbose_name=_("customer"))
    text = models.TextField(_("text"))
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", editable=False, verbose_name=_("author"))
    author_label = models.CharField(_("author"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        ordering = ["-created_at"]

    def __str__(self):
        return self.text[:60]


def attachment_path(instance, filename):
    # The stored name never contains the uploader's file name: no path tricks, no collisions.
    return f"crm/attachments/{instance.created_at:%Y/%m}/{instance.id}"


class Attachment(BusinessRecord, Archivable):
    """A file kept about a customer (scan, signed form), optionally tied to one of its contracts.

    Stored through Django's storage API; served only by a permission-checked view.
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="attachments",
                                 verbose_name=_("customer"))
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="attachments", verbose_name=_("contract"))
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=255, editable=False)
    filename = models.CharField(_("file name"), max_length=255, editable=False)
    content_type = models.CharField(_("content type"), max_length=100, editable=False)
    size = models.PositiveBigIntegerField(_("size (bytes)"), editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    description = models.CharField(_("description"), max_length=200, blank=True)
    uploaded_by = models.CharField(_("uploaded by"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")
        ordering = ["-created_at"]

    def __str__(self):
        return self.filename


class SearchTerm(models.Model):
    """Derived: the words a customer is found by (see crm/search.py). Rewritten by the
    services whenever a customer, its contacts or its authorised persons change."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    term = models.CharField(max_length=100, db_index=True)

    class Meta:
        default_permissions = ()
