"""The self-care portal: its users (a customer's logins, never staff users), their departments,
the operator's settings, one-time codes, API tokens and the attempts counted for rate limits."""

import hashlib

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord
from tarifa.kernel.secrets import EncryptedTextField

LANGUAGES = [("en", "English"), ("ru", "Русский")]

# Customer fields a portal user may be allowed to edit (PortalSettings.editable_fields).
EDITABLE_FIELDS = [
    ("email", _("E-mail address")),
    ("phone", _("Phone number")),
    ("first_name", _("First name")),
    ("last_name", _("Last name")),
    ("preferred_channel", _("Preferred contact channel")),
]


class PortalSettings(models.Model):
    """What the operator lets customers do themselves (one row; `current()`)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(_("name"), max_length=100, default="Self-care portal")
    self_registration = models.BooleanField(_("self-registration with a one-time code"), default=True)
    allowed_tariffs = models.ManyToManyField("catalog.Tariff", blank=True, related_name="+",
                                             verbose_name=_("tariffs customers may change to"))
    tariff_change_requires_ticket = models.BooleanField(
        _("tariff change needs staff approval (opens a request)"), default=False)
    pause_allowed = models.BooleanField(_("customers may pause their services"), default=True)
    pause_max_days_per_year = models.PositiveIntegerField(_("pause: days per calendar year"), default=60)
    pause_min_days = models.PositiveIntegerField(_("pause: shortest pause, days"), default=1)
    promised_payment = models.BooleanField(_("promised payment in the portal"), default=True)
    editable_fields = ArrayField(models.CharField(max_length=32, choices=EDITABLE_FIELDS), blank=True,
                                 default=list, verbose_name=_("profile fields customers may edit"))
    notice = models.TextField(_("notice shown on every customer's home page"), blank=True)
    updated_at = models.DateTimeField(_("updated"), default=now, editable=False)

    class Meta:
        verbose_name = _("portal settings")
        verbose_name_plural = _("portal settings")
        permissions = [("view_as_customer", _("Can open a customer's portal read-only (see what the customer sees)"))]

    def __str__(self):
        return str(self.name)


class Department(BusinessRecord, Archivable):
    """A business customer's department: groups its lines (subscriptions) for its portal users."""

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="portal_departments",
                                 verbose_name=_("customer"))
    name = models.CharField(_("name"), max_length=100)
    subscriptions = models.ManyToManyField("subscriptions.Subscription", blank=True, related_name="portal_departments",
                                           verbose_name=_("lines"))

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["customer", "name"]
        constraints = [models.UniqueConstraint(fields=["customer", "name"], name="portal_department_unique")]

    def __str__(self):
        return f"{self.name} ({self.customer})"


class PortalUser(BusinessRecord, Archivable):
    """A customer's login to the portal. Not a staff user: it has no permissions, no roles, and
    cannot sign in to the operator's screens or the staff API. Its password is hashed with
    Django's hashers; its TOTP secret is encrypted at rest."""

    class Role(models.TextChoices):
        ADMINISTRATOR = "administrator", _("Administrator")
        ACCOUNTANT = "accountant", _("Accountant")
        TECHNICAL = "technical", _("Technical contact")

    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="portal_users",
                                 verbose_name=_("customer"))
    login = models.CharField(_("login"), max_length=150, unique=True,
                             help_text=_("An e-mail address, a phone number or a name; case does not matter."))
    name = models.CharField(_("name"), max_length=150, blank=True)
    password = models.CharField(max_length=256, editable=False)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.ADMINISTRATOR)
    departments = models.ManyToManyField(Department, blank=True, related_name="users",
                                         verbose_name=_("departments"),
                                         help_text=_("Empty: all of the customer's lines."))
    language = models.CharField(_("language"), max_length=8, choices=LANGUAGES, default="en")
    totp_secret = EncryptedTextField(blank=True, default="", editable=False)
    totp_enabled = models.BooleanField(_("two-factor (TOTP)"), default=False, editable=False)
    totp_last_step = models.BigIntegerField(default=0, editable=False)
    notify_email = models.BooleanField(_("notifications by e-mail"), default=True)
    notify_sms = models.BooleanField(_("notifications by SMS"), default=False)
    last_login_at = models.DateTimeField(_("last login"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("portal user")
        verbose_name_plural = _("portal users")
        ordering = ["customer", "login"]

    def __str__(self):
        return self.login

    # What the audit trail and the services below name as the actor.
    @property
    def actor(self) -> str:
        return f"portal:{self.login}"

    is_authenticated = True
    read_only = False  # the staff's "see what the customer sees" view is a read-only stand-in

    @property
    def is_active(self) -> bool:
        return self.archived_at is None


class OneTimeCode(models.Model):
    """A code sent by e-mail or SMS to register or reset a password. Only its hash is kept."""

    class Purpose(models.TextChoices):
        REGISTER = "register", _("Registration")
        RESET = "reset", _("Password reset")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="+")
    portal_user = models.ForeignKey(PortalUser, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    destination = models.CharField(max_length=254)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["destination", "purpose", "created_at"], name="portal_code_dest_idx")]


class PortalToken(models.Model):
    """A portal API token (the mobile app). Only its SHA-256 is stored; never a staff token."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    portal_user = models.ForeignKey(PortalUser, on_delete=models.PROTECT, related_name="tokens")
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()


class Attempt(models.Model):
    """One attempt at a login, a one-time code or a voucher, counted for rate limits.

    In PostgreSQL, so that every server process counts the same attempts."""

    class Kind(models.TextChoices):
        LOGIN = "login", _("Login")
        CODE = "code", _("One-time code")
        SEND = "send", _("Code sent")
        VOUCHER = "voucher", _("Voucher")

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    key = models.CharField(max_length=254)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=now)
    succeeded = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["kind", "key", "at"], name="portal_attempt_key_idx"),
                   models.Index(fields=["kind", "ip", "at"], name="portal_attempt_ip_idx")]
