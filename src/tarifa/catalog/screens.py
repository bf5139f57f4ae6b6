from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import today
from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import services
from .forms import (ChannelForm, ChannelPackageForm, ChannelPriceForm, DevicePriceForm, NewPriceForm,
                    OneTimeFeeForm, PriceVersionForm, ServiceForm, ServiceTypeForm, TariffForm, TariffParameterForm,
                    TaxForm)
from .models import (Channel, ChannelPackage, ChannelPrice, DevicePrice, OneTimeFee, PriceVersion, Service,
                     ServiceType, Tariff, TariffParameter, Tax)

AREA = "Catalog"


def _list(value):
    return list(value) if value is not None else None


register(ModelScreens(
    model=ServiceType, area=AREA, columns=["code", "name", "category"], form_class=ServiceTypeForm,
    create=services.create_service_type, update=services.update_service_type, archive=services.archive,
    import_fields=["code", "name", "category", "description"],
    filterset_fields=["category"], search_fields=["code", "name"], ordering=["code"],
))

register(ModelScreens(
    model=Service, area=AREA, columns=["code", "name", "service_type__name"], form_class=ServiceForm,
    create=services.create_service, update=services.update_service, archive=services.archive,
    import_fields=["code", "name", "service_type", "description"],
    filterset_fields=["service_type"], search_fields=["code", "name"], ordering=["code"],
))

register(ModelScreens(
    model=Tax, area=AREA, columns=["code", "name", "rate", "inclusive", "valid_from", "valid_to"], form_class=TaxForm,
    create=lambda *, actor, service_types=(), **d: services.create_tax(actor=actor, service_types=_list(service_types), **d),
    update=lambda obj, *, actor, service_types=None, **d: services.update_tax(obj, actor=actor,
                                                                              service_types=_list(service_types), **d),
    archive=services.archive, filterset_fields=["inclusive"], search_fields=["code", "name"], ordering=["code"],
    menu_label=_("Taxes"),
))

register(ModelScreens(
    model=Channel, area=AREA, columns=["number", "code", "name"], form_class=ChannelForm,
    create=services.create_channel, update=services.update_channel, archive=services.archive,
    import_fields=["code", "name", "number"], search_fields=["code", "name"], ordering=["number", "code"],
    menu_label=_("TV channels"),
))

register(ModelScreens(
    model=ChannelPackage, area=AREA, columns=["code", "name"], form_class=ChannelPackageForm,
    create=lambda *, actor, channels=(), **d: services.create_channel_package(actor=actor, channels=_list(channels), **d),
    update=lambda obj, *, actor, channels=None, **d: services.update_channel_package(obj, actor=actor,
                                                                                    channels=_list(channels), **d),
    archive=services.archive, search_fields=["code", "name"], ordering=["code"],
    detail_context=lambda request, obj: {"related_rows": [(_("Channels"), obj.channels.all())]},
    detail_template="catalog/related_detail.html",
))


def _tariff_context(request, tariff):
    return {"price_versions": tariff.price_versions.prefetch_related("one_time_fees", "channel_prices__channel",
                                                                     "channel_prices__package").order_by("-valid_from"),
            "parameters": tariff.parameters.order_by("code"),
            "current": tariff.version_on(services.today())}


register(ModelScreens(
    model=Tariff, area=AREA, columns=["code", "name", "service__name", "currency", "period", "proration"],
    form_class=TariffForm,
    create=services.create_tariff, update=services.update_tariff, archive=services.archive,
    filterset_fields=["service", "currency", "period"], search_fields=["code", "name"], ordering=["code"],
    detail_template="catalog/tariff_detail.html", detail_context=_tariff_context,
    actions=[Action("new-price", _("New price"), "catalog.add_priceversion",
                    lambda tariff, *, actor, **d: services.create_price_version(actor=actor, tariff=tariff, **d),
                    form_class=NewPriceForm, available=lambda t: t.archived_at is None)],
))

register(ModelScreens(
    model=TariffParameter, area=AREA, columns=["tariff__code", "code", "label", "kind", "value", "required"],
    form_class=TariffParameterForm,
    create=services.create_parameter, update=services.update_parameter,
    filterset_fields=["tariff", "kind"], search_fields=["code", "label", "tariff__code"], ordering=["tariff", "code"],
))

def _future_version():
    """A price version that has not applied yet: the only kind that may still change."""
    return PriceVersion.objects.filter(valid_from__gt=today(), tariff__archived_at__isnull=True).order_by("pk").first()


def _of_future_version(model):
    def sample(view):
        if view != "edit":
            return None
        version = _future_version()
        found = model.objects.filter(price_version=version).order_by("pk").first() if version else None
        if found is None and version is not None and model is ChannelPrice:  # the demo's future price has none
            channel = Channel.objects.filter(archived_at__isnull=True).order_by("pk").first()
            found = services.create_channel_price(actor="system", price_version=version, channel=channel,
                                                  amount="1.00")
        return found

    return sample


def _new_fee_sample(view, obj, user):
    """form_sample: a kind the future version has no fee of yet."""
    version = _future_version()
    if view != "add" or version is None:
        return {}
    used = set(version.one_time_fees.values_list("kind", flat=True))
    kind = next(k for k in OneTimeFee.Kind.values if k not in used)
    return {"price_version": str(version.pk), "kind": kind, "amount": "2.50"}


def _new_channel_price_sample(view, obj, user):
    version = _future_version()
    if view != "add" or version is None:
        return {}
    priced = set(version.channel_prices.values_list("channel_id", flat=True))
    channel = Channel.objects.filter(archived_at__isnull=True).exclude(pk__in=priced).order_by("pk").first()
    return {"price_version": str(version.pk), "channel": str(channel.pk), "amount": "1.50"}


register(ModelScreens(
    model=PriceVersion, area=AREA, columns=["tariff__code", "valid_from", "recurring_fee", "note"],
    form_class=PriceVersionForm, create=services.create_price_version, update=services.update_price_version,
    filterset_fields=["tariff"], search_fields=["tariff__code", "note"], ordering=["tariff__code", "-valid_from"],
    editable=lambda v: v.valid_from > today(),  # an applied price is changed by a new version
    detail_template="catalog/related_detail.html",
    detail_context=lambda request, v: {"related_rows": [(_("One-time fees"), v.one_time_fees.all()),
                                                        (_("Channel prices"), v.channel_prices.all())]},
))

register(ModelScreens(
    model=OneTimeFee, area=AREA, columns=["price_version", "kind", "amount"], form_class=OneTimeFeeForm,
    create=services.create_one_time_fee, update=services.update_one_time_fee,
    sample=_of_future_version(OneTimeFee), form_sample=_new_fee_sample,
    editable=lambda fee: fee.price_version.valid_from > today(),
    filterset_fields=["kind", "price_version__tariff"], ordering=["price_version__tariff__code", "kind"],
))

register(ModelScreens(
    model=ChannelPrice, area=AREA, columns=["price_version", "channel__name", "package__name", "amount"],
    form_class=ChannelPriceForm, create=services.create_channel_price, update=services.update_channel_price,
    sample=_of_future_version(ChannelPrice), form_sample=_new_channel_price_sample,
    editable=lambda price: price.price_version.valid_from > today(),
    filterset_fields=["price_version__tariff"], ordering=["price_version__tariff__code"],
))

register(ModelScreens(
    model=DevicePrice, area=AREA,
    columns=["code", "name", "currency", "sale_price", "monthly_rent", "installment_total", "installment_months"],
    form_class=DevicePriceForm, create=services.create_device_price, update=services.update_device_price,
    archive=services.archive,
    import_fields=["code", "name", "currency", "sale_price", "monthly_rent", "installment_total",
                   "installment_months", "description"],
    filterset_fields=["currency"], search_fields=["code", "name"], ordering=["code"],
    menu_label=_("Device prices"),
))

register_page(Page("catalog:exchange", _("Catalog file"), AREA, "catalog.export_catalog"))
