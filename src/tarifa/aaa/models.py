"""Network access (RADIUS AAA): the NAS registry, reply profiles, sessions and the authentication log.

- `Nas`: a network access server (BRAS/BNG, Wi-Fi controller, OLT) that sends Access- and
  Accounting-Requests; its shared secret is stored encrypted (`kernel.secrets`).
- Credentials: a subscriber logs in with the subscription's `login` identifier and its `password`
  (both on `subscriptions.Subscription`: one place for the rule, the subscription API takes them);
  the subscription's `mac_address` identifier, when given, binds the login to that MAC
  (Calling-Station-Id) and its `ip_address` identifier is the static address (Framed-IP-Address).
  `AccessSettings` overrides the profile's pool and simultaneous-use limit for one subscription.
- `Profile`: what an Accept carries for a tariff (rate limit, pool, timeouts, extra attributes per
  NAS type), what happens while the subscription is suspended (reject, or a "pay first" profile), and
  the monthly traffic cap (a lower speed, or no access, until the month ends: coa_services).
- `Session` holds the open sessions only (small and hot); a session that ends moves to
  `FinishedSession`, a table partitioned by month of `stopped_at` (migration 0001, `partitions.py`).
  Counters are 64-bit: Acct-*-Octets + 2^32 × Acct-*-Gigawords. (nas, acct_session_id) is unique
  among open sessions, so each accounting record applies once.
- `AuthAttempt`: the authentication log (outcome, reason), kept `TARIFA_AAA_AUTH_LOG_DAYS` days.
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.contrib.postgres.indexes import BrinIndex
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import BusinessRecord
from tarifa.kernel.secrets import EncryptedTextField


class NasType(models.TextChoices):
    GENERIC = "generic", _("Generic (RFC)")
    MIKROTIK = "mikrotik", _("MikroTik")
    CISCO = "cisco", _("Cisco ISG")
    JUNIPER = "juniper", _("Juniper")
    ACCEL_PPP = "accel-ppp", _("Accel-PPP")


class Nas(BusinessRecord):
    """A network access server allowed to talk RADIUS to Tarifa (by its source address)."""

    Type = NasType

    name = models.CharField(_("name"), max_length=100)
    ip_address = models.GenericIPAddressField(_("IP address"), unique=True,
                                              help_text=_("The source address of its RADIUS packets."))
    secret = EncryptedTextField(_("shared secret"), help_text=_("Stored encrypted; never shown again."))
    type = models.CharField(_("type"), max_length=16, choices=NasType.choices, default=NasType.GENERIC)
    coa_port = models.PositiveIntegerField(_("CoA/DM port"), default=3799)
    active = models.BooleanField(_("active"), default=True)
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True, editable=False)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("NAS")
        verbose_name_plural = _("NAS")
        ordering = ["name"]
        permissions = [("rest", "Can answer FreeRADIUS rlm_rest calls (authorize, post-auth, accounting)")]

    def __str__(self):
        return f"{self.name} ({self.ip_address})"


class Profile(BusinessRecord):
    """The reply of an Access-Accept for a tariff's subscribers (the profile without a tariff is the
    default), and the operator's choice for suspended subscribers."""

    class WhenSuspended(models.TextChoices):
        REJECT = "reject", _("Reject the login")
        PAY_FIRST = "pay_first", _("Accept into the pay-first profile")

    class WhenCapped(models.TextChoices):
        THROTTLE = "throttle", _("Lower the speed until the month ends")
        DISCONNECT = "disconnect", _("Disconnect and reject until the month ends")

    name = models.CharField(_("name"), max_length=100)
    tariff = models.OneToOneField("catalog.Tariff", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="aaa_profile", verbose_name=_("tariff"),
                                  help_text=_("Empty: the default profile, for tariffs without their own."))
    rate_down_kbps = models.PositiveIntegerField(_("download speed (kbit/s)"), null=True, blank=True)
    rate_up_kbps = models.PositiveIntegerField(_("upload speed (kbit/s)"), null=True, blank=True)
    ip_pool = models.CharField(_("address pool"), max_length=64, blank=True,
                               help_text=_("Framed-Pool, unless the subscription has a static IP address."))
    simultaneous_use = models.PositiveSmallIntegerField(_("simultaneous sessions"), default=1)
    session_timeout = models.PositiveIntegerField(_("session timeout (s)"), null=True, blank=True)
    idle_timeout = models.PositiveIntegerField(_("idle timeout (s)"), null=True, blank=True)
    interim_interval = models.PositiveIntegerField(_("interim interval (s)"), default=300,
                                                   help_text=_("Acct-Interim-Interval sent to the NAS."))
    attributes = models.JSONField(_("other reply attributes"), default=dict, blank=True,
                                  help_text=_('Per NAS type, e.g. {"mikrotik": {"Mikrotik-Address-List": '
                                              '"home"}, "*": {"Class": "home"}}.'))
    when_suspended = models.CharField(_("when suspended"), max_length=16, choices=WhenSuspended.choices,
                                      default=WhenSuspended.REJECT)
    pay_first_pool = models.CharField(_("pay-first pool"), max_length=64, blank=True)
    pay_first_rate_down_kbps = models.PositiveIntegerField(_("pay-first download (kbit/s)"), null=True, blank=True)
    pay_first_rate_up_kbps = models.PositiveIntegerField(_("pay-first upload (kbit/s)"), null=True, blank=True)
    monthly_cap_mb = models.PositiveIntegerField(
        _("monthly traffic cap (MB)"), null=True, blank=True, validators=[MinValueValidator(1)],
        help_text=_("Download + upload per calendar month, in MB (1 MB = 1,000,000 bytes). Empty: no cap."))
    when_capped = models.CharField(_("when the cap is reached"), max_length=16, choices=WhenCapped.choices,
                                   default=WhenCapped.THROTTLE)
    capped_rate_down_kbps = models.PositiveIntegerField(_("capped download (kbit/s)"), null=True, blank=True)
    capped_rate_up_kbps = models.PositiveIntegerField(_("capped upload (kbit/s)"), null=True, blank=True)

    class Meta:
        verbose_name = _("access profile")
        verbose_name_plural = _("access profiles")
        ordering = ["name"]

    def __str__(self):
        return self.name


class AccessSettings(BusinessRecord):
    """One subscription's overrides of its profile: its own pool or simultaneous-use limit."""

    subscription = models.OneToOneField("subscriptions.Subscription", on_delete=models.PROTECT,
                                        related_name="aaa_settings", verbose_name=_("subscription"))
    ip_pool = models.CharField(_("address pool"), max_length=64, blank=True)
    simultaneous_use = models.PositiveSmallIntegerField(_("simultaneous sessions"), null=True, blank=True,
                                                        help_text=_("Empty: the profile's limit."))

    class Meta:
        verbose_name = _("access settings")
        verbose_name_plural = _("access settings")
        ordering = ["subscription"]

    def __str__(self):
        return str(self.subscription)


class SessionFields(models.Model):
    """What open and finished sessions share."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    nas = models.ForeignKey(Nas, on_delete=models.PROTECT, related_name="+", verbose_name=_("NAS"))
    acct_session_id = models.CharField(_("Acct-Session-Id"), max_length=64)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, null=True,
                                     blank=True, related_name="+", verbose_name=_("subscription"))
    login = models.CharField(_("login"), max_length=100, db_index=True)
    framed_ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    calling_station_id = models.CharField(_("Calling-Station-Id"), max_length=64, blank=True)
    nas_port_id = models.CharField(_("NAS port"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started"))
    updated_at = models.DateTimeField(_("last update"))
    interim_interval = models.PositiveIntegerField(_("interim interval (s)"), default=300)
    session_time = models.BigIntegerField(_("session time"), default=0)
    # From the subscriber's side: bytes_in = Acct-Input-Octets (sent by the subscriber, upload),
    # bytes_out = Acct-Output-Octets (download); each with its Gigawords, 64-bit.
    bytes_in = models.BigIntegerField(_("bytes in"), default=0)
    bytes_out = models.BigIntegerField(_("bytes out"), default=0)
    packets_in = models.BigIntegerField(_("packets in"), default=0)
    packets_out = models.BigIntegerField(_("packets out"), default=0)

    class Meta:
        abstract = True


class Session(SessionFields):
    """An open session (the hot table: only what is online now)."""

    class Meta:
        verbose_name = _("online session")
        verbose_name_plural = _("online sessions")
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["nas", "acct_session_id"], name="aaa_session_once")]
        indexes = [models.Index(fields=["subscription"], name="aaa_session_sub"),
                   models.Index(fields=["updated_at"], name="aaa_session_updated")]

    def __str__(self):
        return f"{self.login} {self.acct_session_id}"


class FinishedSession(SessionFields):
    """A session that ended (Stop, Accounting-On/Off, or closed as stale), partitioned by month of
    `stopped_at`: the database's primary key is (id, stopped_at) (migration 0001)."""

    class StopReason(models.TextChoices):
        STOP = "stop", _("Accounting Stop")
        NAS_RESTART = "nas_restart", _("NAS restarted (Accounting-On/Off)")
        STALE = "stale", _("No update (stale)")
        DISCONNECTED = "disconnected", _("Disconnected")

    stopped_at = models.DateTimeField(_("stopped"))
    terminate_cause = models.CharField(_("Acct-Terminate-Cause"), max_length=32, blank=True)
    stop_reason = models.CharField(_("closed by"), max_length=16, choices=StopReason.choices,
                                   default=StopReason.STOP)

    class Meta:
        verbose_name = _("finished session")
        verbose_name_plural = _("session history")
        ordering = ["-stopped_at"]
        indexes = [models.Index(fields=["nas", "acct_session_id"], name="aaa_finished_nas_session"),
                   models.Index(fields=["subscription", "stopped_at"], name="aaa_finished_sub"),
                   models.Index(fields=["stopped_at"], name="aaa_finished_stopped")]

    def __str__(self):
        return f"{self.login} {self.acct_session_id}"


class AuthAttempt(models.Model):
    """One Access-Request's outcome (the authentication log; kept TARIFA_AAA_AUTH_LOG_DAYS days)."""

    class Outcome(models.TextChoices):
        ACCEPT = "accept", _("Accepted")
        REJECT = "reject", _("Rejected")
        IGNORED = "ignored", _("Ignored")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    at = models.DateTimeField(_("at"), default=now)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    login = models.CharField(_("login"), max_length=100, blank=True)
    nas = models.ForeignKey(Nas, on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False,
                            related_name="+", verbose_name=_("NAS"))
    nas_ip = models.GenericIPAddressField(_("NAS address"), null=True, blank=True)
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.DO_NOTHING, null=True,
                                     blank=True, db_constraint=False, related_name="+",
                                     verbose_name=_("subscription"))
    calling_station_id = models.CharField(_("Calling-Station-Id"), max_length=64, blank=True)
    method = models.CharField(_("method"), max_length=12, blank=True)

    class Meta:
        verbose_name = _("authentication attempt")
        verbose_name_plural = _("authentication log")
        ordering = ["-at"]
        indexes = [BrinIndex(fields=["at"], name="aaa_auth_at_brin"),
                   models.Index(fields=["login", "-at"], name="aaa_auth_login"),
                   models.Index(fields=["subscription", "-at"], name="aaa_auth_sub")]

    def __str__(self):
        return f"{self.login} {self.get_outcome_display()} {self.at:%Y-%m-%d %H:%M:%S}"



from .coa_models import CoaAttempt, ReconciliationRun, SessionCharge  # noqa: E402,F401 — the CoA/DM log and reconciliation
