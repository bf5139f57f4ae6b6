"""Reference releases: what the centre published (on the centre) or received and applied (on a branch),
refusals a branch recorded, and the number ranges the centre allocates to branches (docs/federation.md)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord


class Release(models.Model):
    """An immutable, numbered, signed release of the centrally owned reference data.

    `content` is the canonical JSON text exactly as signed (its SHA-256 is `content_hash`); the signature
    covers the release's header (number, format, effective date, centre, publication time, hash)."""

    class Origin(models.TextChoices):
        PUBLISHED = "published", _("published here (centre)")
        RECEIVED = "received", _("received from the centre")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    number = models.PositiveIntegerField(_("number"), unique=True)
    format_version = models.PositiveSmallIntegerField(_("format"))
    effective_date = models.DateField(_("effective date"))
    centre = models.CharField(_("centre"), max_length=16)
    published_at = models.DateTimeField(_("published"))
    published_by = models.CharField(_("published by"), max_length=150, blank=True)
    note = models.TextField(_("note"), blank=True)
    content = models.TextField(_("content"))
    content_hash = models.CharField(_("content hash (SHA-256)"), max_length=64)
    key_id = models.CharField(_("signed with key"), max_length=64)
    signature = models.TextField(_("signature"))
    counts = models.JSONField(_("rows per part"), default=dict)
    changes = models.JSONField(_("changes against the previous release"), default=dict)
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices)
    applied_at = models.DateTimeField(_("applied"), null=True, blank=True)

    class Meta:
        verbose_name = _("reference release")
        verbose_name_plural = _("reference releases")
        ordering = ["-number"]
        permissions = [("publish_release", "Can publish a reference release"),
                       ("pull_releases", "Can pull reference releases from the centre")]

    def __str__(self):
        return f"release {self.number}"


class ReleaseRefusal(models.Model):
    """A release a branch could not apply (a newer format, a bad signature or hash, a gap, an error):
    recorded and reported (`federation status`) until a later pull applies that number."""

    number = models.PositiveIntegerField(_("release"))
    code = models.CharField(_("reason code"), max_length=32)
    message = models.TextField(_("reason"))
    at = models.DateTimeField(_("at"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        verbose_name = _("refused release")
        verbose_name_plural = _("refused releases")
        ordering = ["-at"]
        default_permissions = ("view",)

    def __str__(self):
        return f"release {self.number}: {self.code}"


class PullState(models.Model):
    """One row: the branch's last pull from the centre (its status line)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        default_permissions = ()


class NumberRange(BusinessRecord, Archivable):
    """A range of identifiers (phone numbers, logins, IP addresses…) the centre allocates to one branch, so
    numbers are unique across the federation without asking anyone online. Published in releases."""

    class Kind(models.TextChoices):
        PHONE_NUMBER = "phone_number", _("Phone numbers")
        IP_ADDRESS = "ip_address", _("IP addresses")
        LOGIN = "login", _("Logins")
        ICCID = "iccid", _("SIM cards (ICCID)")
        OTHER = "other", _("Other")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    first = models.CharField(_("first"), max_length=64)
    last = models.CharField(_("last"), max_length=64)
    assigned_branch = models.CharField(_("branch"), max_length=16)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("number range")
        verbose_name_plural = _("number ranges")
        ordering = ["kind", "first"]
        constraints = [models.UniqueConstraint(fields=["kind", "first"], condition=models.Q(archived_at__isnull=True),
                                               name="releases_number_range_unique")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.first}–{self.last} → {self.assigned_branch}"
