"""The product catalog: what the operator sells and at what price.

Services of a service type are sold under tariffs. A tariff's prices live in price
versions, each effective from a date: a new price is a new version, and a version
that has applied is never edited. One-time fees and TV channel prices belong to a
price version, so they change the same way. Taxes are data, chosen by service type
and the customer's tax scheme.
"""

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import today
from tarifa.kernel.models import Archivable, BusinessRecord
from tarifa.kernel.money import CURRENCY_CHOICES, default_currency

code_validator = RegexValidator(r"^[A-Za-z0-9_.-]+$", _("Letters, digits, dot, dash and underscore only."))


def plain(amount) -> str:
    """A Decimal without trailing zeros or exponent: 20.000000 -> "20"."""
    return format(amount.normalize(), "f") if amount is not None else ""


def money_field(label, **kwargs):
    kwargs.setdefault("default", 0)
    return models.DecimalField(label, max_digits=20, decimal_places=6, **kwargs)


class ServiceType(BusinessRecord, Archivable):
    """What kind of service this is; rating and provisioning are chosen by `category`."""

    class Category(models.TextChoices):
        INTERNET = "internet", _("Internet access")
        TELEPHONY = "telephony", _("Telephony")
        MOBILE = "mobile", _("Mobile")
        IPTV = "iptv", _("IPTV / cable TV")
        VOIP = "voip", _("VoIP")
        EMAIL = "email", _("E-mail")
        HOSTING = "hosting", _("Hosting")
        OTHER = "other", _("Other")

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    category = models.CharField(_("category"), max_length=16, choices=Category.choices, default=Category.OTHER)
    identifier_kinds = ArrayField(models.CharField(max_length=16), blank=True, default=list,
                                  verbose_name=_("identifiers used"),
                                  help_text=_("Which identifiers a subscription of this type carries, e.g. "
                                              "login, phone_number, iccid, imsi, ip_address, mac_address, smart_card."))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("service type")
        verbose_name_plural = _("service types")
        ordering = ["code"]

    def __str__(self):
        return self.name


class Service(BusinessRecord, Archivable):
    """A service the operator sells (e.g. "Home internet", "Mobile voice")."""

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    service_type = models.ForeignKey(ServiceType, on_delete=models.PROTECT, related_name="services",
                                     verbose_name=_("service type"))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("service")
        verbose_name_plural = _("services")
        ordering = ["code"]

    def __str__(self):
        return self.name


class Tax(BusinessRecord, Archivable):
    """A tax rate (VAT, excise…), inclusive or exclusive, for some or all service types.

    Whether it applies to a customer is the customer's tax scheme's answer
    (`TaxScheme.applies(code)`).
    """

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    rate = models.DecimalField(_("rate, %"), max_digits=7, decimal_places=4, validators=[MinValueValidator(0)])
    inclusive = models.BooleanField(_("included in prices"), default=True,
                                    help_text=_("Prices already contain this tax; otherwise it is added on top."))
    service_types = models.ManyToManyField(ServiceType, blank=True, related_name="taxes",
                                           verbose_name=_("service types"),
                                           help_text=_("Empty: applies to every service type."))
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_to = models.DateField(_("valid to"), null=True, blank=True)

    class Meta:
        verbose_name = _("tax")
        verbose_name_plural = _("taxes")
        ordering = ["code"]

    def __str__(self):
        return f"{self.name} {plain(self.rate)}%"


class Channel(BusinessRecord, Archivable):
    """A TV channel."""

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    number = models.PositiveIntegerField(_("channel number"), null=True, blank=True)

    class Meta:
        verbose_name = _("TV channel")
        verbose_name_plural = _("TV channels")
        ordering = ["number", "code"]

    def __str__(self):
        return self.name


class ChannelPackage(BusinessRecord, Archivable):
    """A bundle of TV channels sold together."""

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    channels = models.ManyToManyField(Channel, blank=True, related_name="packages", verbose_name=_("channels"))

    class Meta:
        verbose_name = _("channel package")
        verbose_name_plural = _("channel packages")
        ordering = ["code"]

    def __str__(self):
        return self.name


class Tariff(BusinessRecord, Archivable):
    """A rate plan of a service: how its fees are charged and when service is held.

    Thresholds apply to prepaid accounts: below `suspend_below` the subscription is
    suspended for cause *balance*; at or above `resume_at` it resumes.
    """

    class Period(models.TextChoices):
        MONTH = "month", _("Monthly fee")
        DAY = "day", _("Daily fee")

    class Proration(models.TextChoices):
        BY_DAY = "by_day", _("By day (each day its share)")
        NONE = "none", _("None (whole period on its first day)")

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="tariffs", verbose_name=_("service"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES,
                                default=default_currency)
    period = models.CharField(_("fee period"), max_length=8, choices=Period.choices, default=Period.MONTH)
    proration = models.CharField(_("proration"), max_length=8, choices=Proration.choices, default=Proration.BY_DAY)
    charge_suspended_days = models.BooleanField(_("charge suspended days"), default=False)
    suspend_below = money_field(_("suspend below"), help_text=_("Prepaid: suspend when the balance falls below."))
    resume_at = money_field(_("resume at"), help_text=_("Prepaid: resume when the balance is at least this."))
    warn_below = money_field(_("warn below"), null=True, blank=True, default=None,
                             help_text=_("Send a low-balance warning when the balance falls below (empty: never)."))
    voluntary_suspension = models.BooleanField(_("voluntary suspension allowed"), default=True)
    voluntary_suspension_max_days = models.PositiveIntegerField(_("voluntary suspension, max days"), default=90)
    promised_payment_amount = money_field(_("promised payment amount"),
                                          help_text=_("Temporary credit a customer may take (0: not offered)."))
    promised_payment_days = models.PositiveIntegerField(_("promised payment days"), default=3)
    promised_payment_interval_days = models.PositiveIntegerField(
        _("promised payment at most once per (days)"), default=30)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("tariff")
        verbose_name_plural = _("tariffs")
        ordering = ["code"]
        permissions = [("export_catalog", "Can export the catalog file"),
                       ("import_catalog", "Can import a catalog file")]
        constraints = [
            models.CheckConstraint(condition=Q(resume_at__gte=models.F("suspend_below")),
                                   name="catalog_tariff_resume_not_below_suspend"),
        ]

    def __str__(self):
        return self.name

    def version_on(self, day):
        return self.price_versions.filter(valid_from__lte=day).order_by("-valid_from").first()


class TariffParameter(BusinessRecord):
    """A parameter the tariff fixes (value given) or leaves to be filled at activation."""

    class Kind(models.TextChoices):
        INTEGER = "integer", _("Whole number")
        DECIMAL = "decimal", _("Decimal number")
        TEXT = "text", _("Text")
        CHOICE = "choice", _("One of choices")

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="parameters", verbose_name=_("tariff"))
    code = models.CharField(_("code"), max_length=32, validators=[code_validator])
    label = models.CharField(_("label"), max_length=100)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.TEXT)
    value = models.CharField(_("fixed value"), max_length=200, blank=True,
                             help_text=_("Empty: filled in at activation."))
    choices = ArrayField(models.CharField(max_length=100), blank=True, default=list, verbose_name=_("choices"))
    required = models.BooleanField(_("required"), default=True)
    unit = models.CharField(_("unit"), max_length=16, blank=True, help_text=_("e.g. Mbit/s"))

    class Meta:
        verbose_name = _("tariff parameter")
        verbose_name_plural = _("tariff parameters")
        ordering = ["tariff", "code"]
        constraints = [models.UniqueConstraint(fields=["tariff", "code"], name="catalog_parameter_unique")]

    def __str__(self):
        return f"{self.tariff.code}.{self.code}"


class PriceVersion(BusinessRecord):
    """The tariff's prices from `valid_from` until the next version. Applied versions are frozen."""

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="price_versions",
                               verbose_name=_("tariff"))
    valid_from = models.DateField(_("valid from"))
    recurring_fee = money_field(_("recurring fee"), validators=[MinValueValidator(0)])
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("price version")
        verbose_name_plural = _("price versions")
        ordering = ["tariff", "-valid_from"]
        constraints = [models.UniqueConstraint(fields=["tariff", "valid_from"], name="catalog_price_version_unique")]

    def __str__(self):
        return f"{self.tariff.code} from {self.valid_from}"

    @property
    def has_applied(self) -> bool:
        return self.valid_from <= today()


class OneTimeFee(BusinessRecord):
    """A fee charged once, on an event of the subscription."""

    class Kind(models.TextChoices):
        ACTIVATION = "activation", _("Activation")
        RECONNECTION = "reconnection", _("Reconnection")
        SIM_REPLACEMENT = "sim_replacement", _("SIM replacement")
        NUMBER_CHANGE = "number_change", _("Number change")
        TARIFF_CHANGE = "tariff_change", _("Tariff change")
        VOLUNTARY_SUSPENSION = "voluntary_suspension", _("Voluntary suspension")
        TERMINATION = "termination", _("Termination")

    price_version = models.ForeignKey(PriceVersion, on_delete=models.PROTECT, related_name="one_time_fees",
                                      verbose_name=_("price version"))
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    amount = money_field(_("amount"), validators=[MinValueValidator(0)])

    class Meta:
        verbose_name = _("one-time fee")
        verbose_name_plural = _("one-time fees")
        ordering = ["price_version", "kind"]
        constraints = [models.UniqueConstraint(fields=["price_version", "kind"], name="catalog_one_time_fee_unique")]

    def __str__(self):
        return f"{self.get_kind_display()} {plain(self.amount)}"


class ChannelPrice(BusinessRecord):
    """The tariff's price per period for one TV channel or one channel package."""

    price_version = models.ForeignKey(PriceVersion, on_delete=models.PROTECT, related_name="channel_prices",
                                      verbose_name=_("price version"))
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, null=True, blank=True, related_name="prices",
                                verbose_name=_("channel"))
    package = models.ForeignKey(ChannelPackage, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="prices", verbose_name=_("package"))
    amount = money_field(_("amount per period"), validators=[MinValueValidator(0)])

    class Meta:
        verbose_name = _("channel price")
        verbose_name_plural = _("channel prices")
        ordering = ["price_version"]
        constraints = [
            models.CheckConstraint(condition=Q(channel__isnull=True) ^ Q(package__isnull=True),
                                   name="catalog_channel_price_one_target"),
            models.UniqueConstraint(fields=["price_version", "channel"], name="catalog_channel_price_channel_unique"),
            models.UniqueConstraint(fields=["price_version", "package"], name="catalog_channel_price_package_unique"),
        ]

    def __str__(self):
        return f"{self.channel or self.package}: {plain(self.amount)}"

    @property
    def item_code(self) -> str:
        return f"channel-{self.channel.code}" if self.channel_id else f"package-{self.package.code}"


class DevicePrice(BusinessRecord, Archivable):
    """A row of the device price list: what a customer pays for a device from the warehouse.

    The warehouse's items name their row by code (`inventory.Item.catalog_ref`); selling,
    renting or selling a device in installments without an amount takes the amount (and the
    number of months) from here. Zero means "not offered that way". Archived: new use refused.
    """

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES, default=default_currency)
    sale_price = money_field(_("sale price"), validators=[MinValueValidator(0)],
                             help_text=_("Charged once when the device is sold (0: not sold)."))
    monthly_rent = money_field(_("monthly rent"), validators=[MinValueValidator(0)],
                               help_text=_("Charged per day installed, prorated by calendar month (0: not rented)."))
    installment_total = money_field(_("installment total"), validators=[MinValueValidator(0)],
                                    help_text=_("The total paid in monthly installments (0: not offered)."))
    installment_months = models.PositiveSmallIntegerField(_("installment months"), default=0,
                                                          validators=[MaxValueValidator(120)], help_text=_("How many monthly installments."))
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("device price")
        verbose_name_plural = _("device prices")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(sale_price__gte=0) & Q(monthly_rent__gte=0)
                                   & Q(installment_total__gte=0), name="catalog_device_price_not_negative"),
            models.CheckConstraint(condition=Q(installment_total=0) | Q(installment_months__gte=1),
                                   name="catalog_device_price_installment_months"),
        ]

    def __str__(self):
        return f"{self.code} {self.name}"

    def terms(self, mode: str) -> tuple:
        """(amount, months) offered for `mode` (sale, rent, installments); amount None: not offered."""
        if mode == "sale":
            return (self.sale_price if self.sale_price > 0 else None), 0
        if mode == "rent":
            return (self.monthly_rent if self.monthly_rent > 0 else None), 0
        if mode == "installments":
            if self.installment_total > 0 and self.installment_months >= 1:
                return self.installment_total, self.installment_months
            return None, 0
        return None, 0
