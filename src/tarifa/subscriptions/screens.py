from django.utils.translation import gettext_lazy as _

from tarifa.crm.panels import panels_for, register_panel
from tarifa.ledger.models import Transfer
from tarifa.inventory import selectors as inventory
from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import devices, services
from .forms import (AddItemForm, InstallmentsForm, RentDeviceForm, SellDeviceForm, ChangeNumberForm, ChangeTariffForm, PromisedPaymentForm, ReasonForm, ReplaceSimForm,
                    ResumeForm, SubscriptionForm, SuspendForm, TerminateForm)
from .models import ChargeRun, DeviceAgreement, PromisedPayment, Subscription, SubscriptionItem, Suspension

AREA = "Customers"
S = Subscription.Status


def _create(*, actor, billing_account, tariff, parameters=None, note="", activate=False, **identifiers):
    return services.create_subscription(actor=actor, billing_account=billing_account, tariff=tariff,
                                        parameters=parameters or {}, note=note, activate=activate, **identifiers)


def _detail_context(request, sub):
    return {
        "status_changes": sub.status_changes.order_by("-at")[:50],
        "suspensions": sub.suspensions.order_by("-started_at")[:50],
        "periods": sub.tariff_periods.select_related("tariff").order_by("-valid_from"),
        "items": sub.items.select_related("channel", "package").order_by("-added_on"),
        "fees": Transfer.objects.filter(reference_type="subscriptions.subscription", reference_id=str(sub.pk))
        .order_by("-created_at")[:60] if request.user.has_perm("ledger.view_transfer") else None,
        "panels": panels_for(request, sub, page="subscription"),
    }


def _channel_not_on(sub):
    """form_sample of "Add TV channel": a channel or package sold under the tariff, not on the subscription yet."""
    from tarifa.catalog.models import ChannelPrice

    items = sub.items.filter(removed_on__isnull=True)
    taken = {*items.values_list("channel_id", flat=True), *items.values_list("package_id", flat=True)} - {None}
    for price in ChannelPrice.objects.filter(price_version__tariff=sub.tariff).order_by("pk"):
        target = price.channel_id or price.package_id
        if target not in taken:
            return {"channel": str(price.channel_id)} if price.channel_id else {"package": str(price.package_id)}
    return {}


def _promise_candidate():
    """form_sample of a promised payment: an account whose live tariff offers one, not taken yet."""
    from tarifa.ledger.models import BillingAccount

    return (BillingAccount.objects.filter(status="active", promised_payments__isnull=True,
                                          subscriptions__status__in=[S.ACTIVE, S.SUSPENDED],
                                          subscriptions__tariff__promised_payment_amount__gt=0)
            .order_by("pk").first())


def _device_sample(sub, user, mode):
    """form_sample of the device actions: a device in stock, and an amount. Installing it from stock
    is a stock move, so the acting user also needs inventory.add_move: the suite's user gets it."""
    from tarifa.identity.models import Role
    from tarifa.identity.services import permissions_by_name

    if user is not None and not user.has_perm("inventory.add_move"):
        role, _made = Role.objects.get_or_create(name="form suite: stock moves")
        role.permissions.add(*permissions_by_name(["inventory.add_move"]))
        user.roles.add(role)
    device = devices.stock_devices().order_by("serial").first()
    sample = {"serial": device.serial if device else "", "amount": "5.00"}
    return {**sample, "months": "6"} if mode == "installments" else sample


def _device_action(mode):
    def run(sub, *, actor, serial, amount, months=None):
        devices.start_agreement(sub, actor=actor, serial=serial, agreement=mode, amount=amount, months=months)
        return sub  # back to the subscription's page, where the devices panel shows it
    return run


def _devices_panel(request, sub):
    agreements = list(DeviceAgreement.objects.filter(subscription=sub).select_related("device__item",
                                                                                       "device__location"))
    for a in agreements:
        a.left = a.installments - a.installments_charged if a.mode == "installments" and a.ended_on is None else None
    # Installed for this subscription (e.g. by a ticket) with no sale or rent on it: the operator's own
    covered = {a.device_id for a in agreements if a.ended_on is None}
    installed = [d for d in inventory.devices_of_subscription(sub.number) if d.pk not in covered]
    return {"agreements": agreements, "installed": installed}


def _live(sub):
    return sub.status in (S.ACTIVE, S.SUSPENDED)


register(ModelScreens(
    model=Subscription, area=AREA,
    columns=["number", "billing_account__number", "service__name", "tariff__code", "status", "login",
             "phone_number", "activated_on"],
    form_class=SubscriptionForm, create=_create, update=services.update_subscription,
    filterset_fields=["status", "service", "tariff"],
    search_fields=["number", "login", "phone_number", "iccid", "imsi", "ip_address", "mac_address", "smart_card",
                   "billing_account__number"],
    ordering=["-number"], detail_template="subscriptions/subscription_detail.html", detail_context=_detail_context,
    actions=[
        Action("activate", _("Activate"), "subscriptions.activate_subscription",
               lambda sub, *, actor: services.activate_subscription(sub, actor=actor),
               available=lambda sub: sub.status == S.PENDING,
               confirm=_("The service starts today: the activation fee and today's fees are charged.")),
        Action("suspend", _("Suspend"), "subscriptions.suspend_subscription",
               lambda sub, *, actor, **d: services.suspend(sub, actor=actor, **d), form_class=SuspendForm,
               available=_live),
        Action("resume", _("Resume"), "subscriptions.suspend_subscription",
               lambda sub, *, actor, **d: services.resume(sub, actor=actor, **d), form_class=ResumeForm,
               available=lambda sub: sub.suspensions.filter(ended_at__isnull=True).exists()),
        Action("change-tariff", _("Change tariff"), "subscriptions.change_tariff",
               lambda sub, *, actor, **d: services.change_tariff(sub, actor=actor, **d), form_class=ChangeTariffForm,
               available=_live),
        Action("replace-sim", _("Replace SIM"), "subscriptions.replace_sim",
               lambda sub, *, actor, **d: services.replace_sim(sub, actor=actor, **d), form_class=ReplaceSimForm,
               available=lambda sub: sub.is_live and "iccid" in sub.service.service_type.identifier_kinds),
        Action("change-number", _("Change number"), "subscriptions.replace_sim",
               lambda sub, *, actor, **d: services.change_number(sub, actor=actor, **d), form_class=ChangeNumberForm,
               available=lambda sub: sub.is_live and "phone_number" in sub.service.service_type.identifier_kinds),
        Action("add-channel", _("Add TV channel"), "subscriptions.change_subscription",
               lambda sub, *, actor, **d: services.add_item(sub, actor=actor, **d), form_class=AddItemForm,
               form_sample=lambda sub, user: _channel_not_on(sub),
               available=lambda sub: sub.is_live and sub.service.service_type.category == "iptv"),
        Action("sell-device", _("Sell a device"), "subscriptions.add_deviceagreement",
               _device_action("sale"), form_class=SellDeviceForm, available=lambda sub: sub.is_live,
               form_sample=lambda sub, user: _device_sample(sub, user, "sale"),
               confirm=_("The device is installed at the customer's premises and the price is charged now.")),
        Action("rent-device", _("Rent a device"), "subscriptions.add_deviceagreement",
               _device_action("rent"), form_class=RentDeviceForm, available=lambda sub: sub.is_live,
               form_sample=lambda sub, user: _device_sample(sub, user, "rent"),
               confirm=_("The device is installed at the customer's premises; the rent runs per day until it "
                         "is returned.")),
        Action("device-installments", _("Device on installments"), "subscriptions.add_deviceagreement",
               _device_action("installments"), form_class=InstallmentsForm, available=lambda sub: sub.is_live,
               form_sample=lambda sub, user: _device_sample(sub, user, "installments"),
               confirm=_("The device is installed at the customer's premises; the first installment is charged "
                         "now, one each month after.")),
        Action("terminate", _("Terminate"), "subscriptions.terminate_subscription",
               lambda sub, *, actor, **d: services.terminate(sub, actor=actor, **d), form_class=TerminateForm,
               danger=True, available=lambda sub: sub.is_live,
               confirm=_("The service ends today; days not yet charged and the termination fee are charged.")),
    ],
))

register(ModelScreens(
    model=Suspension, area=AREA, columns=["subscription__number", "cause", "started_on", "planned_end", "ended_on",
                                          "actor", "reason"],
    filterset_fields=["cause"], search_fields=["subscription__number", "reason"], ordering=["-started_at"],
    menu=False,
))

register(ModelScreens(
    model=SubscriptionItem, area=AREA, columns=["subscription__number", "channel__name", "package__name", "added_on",
                                                "removed_on"],
    search_fields=["subscription__number"], ordering=["-added_on"], menu=False,
    actions=[Action("remove", _("Remove"), "subscriptions.change_subscription",
                    lambda item, *, actor, **d: services.remove_item(item, actor=actor, **d), form_class=ReasonForm,
                    available=lambda item: item.removed_on is None, danger=True,
                    confirm=_("The channel or package stops from tomorrow; today stays charged."))],
))

register(ModelScreens(
    model=PromisedPayment, area="Billing", columns=["billing_account__number", "amount", "granted_at", "expires_at",
                                                    "expired_at", "actor"],
    form_class=PromisedPaymentForm,
    create=lambda *, actor, billing_account: services.grant_promised_payment(billing_account, actor=actor),
    form_sample=lambda view, obj, user: {"billing_account": str(_promise_candidate().pk)},
    search_fields=["billing_account__number"], ordering=["-granted_at"],
))

register(ModelScreens(
    model=ChargeRun, area="Billing", columns=["as_of", "first_day", "started_at", "finished_at", "inserted",
                                              "refused", "suspended", "resumed", "actor"],
    ordering=["-started_at"], menu_label=_("Charge runs"),
))

register_page(Page("subscriptions:charge", _("Run fee charging"), "Billing", "subscriptions.charge_fees"))


def _panel_context(request, customer):
    subs = (Subscription.objects.filter(billing_account__customer=customer)
            .select_related("tariff", "service", "billing_account").order_by("-number"))
    return {"subscriptions": subs, "accounts": customer.billing_accounts.filter(status="active"),
            "can_add": request.user.has_perm("subscriptions.add_subscription"),
            "can_activate": request.user.has_perm("subscriptions.activate_subscription")}


register_panel(_("Subscriptions"), "subscriptions/customer_panel.html", context_func=_panel_context,
               permission="subscriptions.view_subscription", key="subscriptions", order=20)


register_panel(_("Devices"), "subscriptions/devices_panel.html", context_func=_devices_panel,
               permission="subscriptions.view_deviceagreement", key="subscription-devices", page="subscription",
               order=15)
