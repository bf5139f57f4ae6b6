"""Online charging: credit-control sessions, their requests and their reservations.

A `ChargingSession` is one credit-control session (a call, a data session, an SMS or a VOD
purchase) of one subscription, as a network element (Diameter peer, HTTP partner, the AAA
server) reports it. Each request it makes is a `ChargingRequest` (kept with the answer
given, so a retransmission is answered from it and charged once). Money is reserved as a
ledger hold per `Reservation`; what was used is posted at each update.
Units are rating's base units: nanoseconds for time, bytes for data, items for counts.
"""

from decimal import Decimal

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord
from tarifa.kernel.money import CURRENCY_CHOICES


def money_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=6, **kwargs)


class DiameterPeer(BusinessRecord, Archivable):
    """A network element allowed to talk Diameter to Tarifa (a switch, PGW, an OCS front end)."""

    class State(models.TextChoices):
        UNKNOWN = "unknown", _("Never connected")
        CONNECTED = "connected", _("Connected")
        DISCONNECTED = "disconnected", _("Disconnected")

    origin_host = models.CharField(_("Origin-Host"), max_length=255, unique=True,
                                   help_text=_("The peer's Diameter identity (FQDN), e.g. pgw1.example.net."))
    realm = models.CharField(_("realm"), max_length=255, help_text=_("The peer's Origin-Realm, e.g. example.net."))
    ip_address = models.GenericIPAddressField(_("IP address"))
    note = models.TextField(_("note"), blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.UNKNOWN, editable=False)
    state_changed_at = models.DateTimeField(_("state since"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("Diameter peer")
        verbose_name_plural = _("Diameter peers")
        ordering = ["origin_host"]

    def __str__(self):
        return self.origin_host


class RatingGroup(BusinessRecord, Archivable):
    """A Diameter Rating-Group or Service-Identifier and the usage type it is charged as.

    A Multiple-Services-Credit-Control whose Rating-Group (or, failing that, Service-Identifier)
    is listed here is priced as this usage type; one not listed falls back to the
    Service-Context-Id, then to the unit asked for (`diameter.usage_type_for`).
    """

    class Kind(models.TextChoices):
        RATING_GROUP = "rating_group", _("Rating-Group")
        SERVICE_IDENTIFIER = "service_identifier", _("Service-Identifier")

    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices, default=Kind.RATING_GROUP)
    number = models.PositiveBigIntegerField(_("number"), validators=[MaxValueValidator(2**32 - 1)],
                                            help_text=_("The Rating-Group or Service-Identifier value (Unsigned32)."))
    usage_type = models.ForeignKey("rating.UsageType", on_delete=models.PROTECT, related_name="+",
                                   verbose_name=_("usage type"), to_field="code", db_column="usage_type",
                                   help_text=_("What its units are charged as (the tariff's rating of this type)."))
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("rating group")
        verbose_name_plural = _("rating groups")
        ordering = ["kind", "number"]
        constraints = [models.UniqueConstraint(fields=["kind", "number"], condition=Q(archived_at__isnull=True),
                                               name="charging_rating_group_live")]

    def __str__(self):
        prefix = "RG" if self.kind == self.Kind.RATING_GROUP else "SI"
        return f"{prefix} {self.number} → {self.usage_type_id}"


class ChargingSession(BusinessRecord):
    """One credit-control session of a subscription, priced by its tariff's rating."""

    class Origin(models.TextChoices):
        DIAMETER = "diameter", _("Diameter")
        HTTP = "http", _("HTTP API")
        RADIUS = "radius", _("RADIUS")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")
        EXPIRED = "expired", _("Expired (silent)")
        REFUSED = "refused", _("Refused")

    class Kind(models.TextChoices):
        SESSION = "session", _("Session")
        EVENT = "event", _("Event")

    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT,
                                     related_name="charging_sessions", verbose_name=_("subscription"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT,
                                        related_name="charging_sessions", verbose_name=_("billing account"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.SESSION)
    usage_type = models.CharField(_("usage type"), max_length=32)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    origin = models.CharField(_("origin"), max_length=16, choices=Origin.choices)
    external_id = models.CharField(_("session id"), max_length=255,
                                   help_text=_("The network's session id (Diameter Session-Id, with the rating group)."))
    peer = models.CharField(_("peer"), max_length=255, blank=True, help_text=_("Origin-Host of the network element."))
    subject = models.CharField(_("subscriber identifier"), max_length=100)
    destination = models.CharField(_("destination"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    # How it is priced, fixed at the start (the plan of the day the call began, as offline).
    tenant = models.CharField(_("rating tenant"), max_length=64, blank=True)
    category = models.CharField(_("rating category"), max_length=64, blank=True)
    rating_subject = models.CharField(_("rating subject"), max_length=100, blank=True)
    rating_plan = models.CharField(_("rating plan"), max_length=64, blank=True)
    rounding_decimals = models.PositiveSmallIntegerField(_("rounding decimals"), default=5)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    used_units = models.BigIntegerField(_("used"), default=0)
    rated_units = models.BigIntegerField(_("rated usage"), default=0)
    free_units = models.BigIntegerField(_("free units"), default=0)
    bundle = models.ForeignKey("rating.Bundle", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                               verbose_name=_("bundle"))
    charged = money_field(_("charged"), default=Decimal(0))
    last_request_number = models.IntegerField(_("last request number"), default=-1)
    final_unit = models.BooleanField(_("final units granted"), default=False)
    termination_cause = models.CharField(_("termination"), max_length=64, blank=True)
    matched_usage = models.CharField(_("matched offline record"), max_length=64, blank=True,
                                     help_text=_("The usage record a CDR of this call was matched to."))

    class Meta:
        verbose_name = _("charging session")
        verbose_name_plural = _("charging sessions")
        ordering = ["-started_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["origin", "external_id"], name="charging_session_external")]
        indexes = [models.Index(fields=["billing_account", "state"], name="charging_session_account"),
                   models.Index(fields=["started_at"], name="charging_session_started")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.usage_type} of {self.subject} at {self.started_at:%Y-%m-%d %H:%M}"


class ChargingRequest(models.Model):
    """A request of a session (initial, update, terminate, event) and the answer given to it."""

    class Type(models.TextChoices):
        INITIAL = "initial", _("Initial")
        UPDATE = "update", _("Update")
        TERMINATE = "terminate", _("Terminate")
        EVENT = "event", _("Event")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    session = models.ForeignKey(ChargingSession, on_delete=models.PROTECT, related_name="requests",
                                verbose_name=_("session"))
    request_type = models.CharField(_("type"), max_length=16, choices=Type.choices)
    request_number = models.IntegerField(_("request number"))
    requested_units = models.BigIntegerField(_("requested"), default=0)
    used_units = models.BigIntegerField(_("reported used"), default=0)
    granted_units = models.BigIntegerField(_("granted"), default=0)
    charged = money_field(_("charged"), default=Decimal(0))
    result_code = models.PositiveIntegerField(_("result code"))
    answer = models.JSONField(_("answer"), default=dict)
    created_at = models.DateTimeField(_("received"))

    class Meta:
        verbose_name = _("charging request")
        verbose_name_plural = _("charging requests")
        ordering = ["session", "request_number"]
        constraints = [models.UniqueConstraint(fields=["session", "request_number"], name="charging_request_once")]

    def __str__(self):
        return f"{self.get_request_type_display()} #{self.request_number}"


class Reservation(models.Model):
    """Units granted to a session and the money held for them (a ledger hold), resolved once."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        SETTLED = "settled", _("Settled")
        EXPIRED = "expired", _("Expired")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    session = models.ForeignKey(ChargingSession, on_delete=models.PROTECT, related_name="reservations",
                                verbose_name=_("session"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                        verbose_name=_("billing account"))
    hold = models.OneToOneField("ledger.Hold", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                verbose_name=_("hold"))
    units = models.BigIntegerField(_("units"))
    free_units = models.BigIntegerField(_("of which free"), default=0)
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField(_("created"))
    expires_at = models.DateTimeField(_("expires"))
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["session"], condition=Q(state="open"), name="charging_one_open_reservation"),
            models.CheckConstraint(condition=Q(amount__gte=0) & Q(units__gte=0), name="charging_reservation_positive"),
        ]
        indexes = [models.Index(fields=["expires_at"], condition=Q(state="open"), name="charging_reservation_open")]

    def __str__(self):
        return f"Reservation of {self.units} units ({self.state})"


class CallMatch(models.Model):
    """Semi-online billing: the CDR (rated usage record) of a call that was charged online.

    The record is not charged again; when its rated cost differs from what the session
    charged, the difference is booked as a correction transfer (`correction`, key
    `semionline:<session>`). One per session and one per usage record.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    session = models.OneToOneField(ChargingSession, on_delete=models.PROTECT, related_name="call_match",
                                   verbose_name=_("session"))
    usage_record = models.OneToOneField("rating.UsageRecord", on_delete=models.PROTECT, related_name="+",
                                        db_constraint=False, verbose_name=_("usage record"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, related_name="+",
                                        verbose_name=_("billing account"))
    batch = models.ForeignKey("rating.UsageBatch", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                              db_constraint=False, verbose_name=_("usage batch"))
    source = models.CharField(_("CDR source"), max_length=64, blank=True)
    record_id = models.CharField(_("CDR record id"), max_length=128)
    online_units = models.BigIntegerField(_("used online"))
    offline_units = models.BigIntegerField(_("used per CDR"))
    online_cost = money_field(_("charged online"))
    offline_cost = money_field(_("rated from the CDR"))
    difference = money_field(_("correction"), help_text=_("Rated from the CDR − charged online; booked when not 0."))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    correction = models.OneToOneField("ledger.Transfer", on_delete=models.PROTECT, null=True, blank=True,
                                      related_name="+", verbose_name=_("correction transfer"))
    session_was_open = models.BooleanField(_("session closed by the CDR"), default=False,
                                           help_text=_("The session was still open; the CDR closed it."))
    matched_at = models.DateTimeField(_("matched"))

    class Meta:
        verbose_name = _("semi-online match")
        verbose_name_plural = _("semi-online matches")
        ordering = ["-matched_at", "-id"]
        indexes = [models.Index(fields=["billing_account", "matched_at"], name="charging_match_account")]

    def __str__(self):
        return f"CDR {self.record_id} ↔ {self.session}"
