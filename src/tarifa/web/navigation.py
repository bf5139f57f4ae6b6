"""The menu, by the operator's jobs: Front office, Cash desk, Billing, Network, Catalog, Reports and
checks, Administration. Each entry is a registered screen's list or a registered page, named by
its URL name; a screen or page not placed here joins the group of its area (so a new screen is in
the menu the moment it is registered), after the placed ones. Entries the user may not open are
not shown; a group with none is not shown. A list page's heading is its menu label."""

from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from . import registry

FRONT_OFFICE, CASH_DESK, BILLING, NETWORK, CATALOG, REPORTS, ADMINISTRATION = (
    _("Front office"), _("Cash desk"), _("Billing"), _("Network"), _("Catalog"), _("Reports and checks"),
    _("Administration"))
WAREHOUSE = _("Warehouse")

# (group, [(url name, label or None for the screen's own, section or "")])
MENU = [
    (FRONT_OFFICE, [
        ("crm:customer_list", _("Customers"), ""),
        ("subscriptions:subscription_list", _("Subscriptions"), ""),
        ("ledger:billingaccount_list", _("Billing accounts"), ""),
        ("crm:contract_list", _("Contracts"), ""),
    ]),
    (CASH_DESK, [
        ("payments:cashier", _("Cashier"), ""),
        ("payments:payment_list", _("Payment journal"), ""),
        ("payments:voucher_redeem", _("Redeem a voucher"), ""),
        ("payments:refund_list", _("Refunds"), ""),
        ("payments:cashiershift_list", _("Cashier shifts"), ""),
        ("payments:cashhandover_list", _("Cash hand-overs"), ""),
        ("payments:cashdesk_list", _("Cash desks"), ""),
        ("payments:cardcheckout_list", _("Card checkouts"), _("Other channels")),
        ("payments:terminaltransaction_list", _("Terminal transactions"), _("Other channels")),
        ("payments:bankstatement_list", _("Bank statements"), _("Other channels")),
        ("payments:bankstatementline_list", _("Bank statement lines"), _("Other channels")),
        ("payments:autopayagreement_list", _("Automatic payments"), _("Other channels")),
        ("payments:voucherbatch_list", _("Voucher batches"), _("Vouchers")),
        ("payments:voucher_generate", _("Generate vouchers"), _("Vouchers")),
    ]),
    (BILLING, [
        ("billing:invoice_list", _("Invoices"), ""),
        ("billing:billrun_list", _("Bill runs"), ""),
        ("subscriptions:charge", _("Run fee charging"), ""),
        ("subscriptions:chargerun_list", _("Charge runs"), ""),
        ("subscriptions:promisedpayment_list", _("Promised payments"), ""),
        ("billing:pendingitem_list", _("Pending charges and credits"), ""),
        ("billing:billcycle_list", _("Bill cycles"), ""),
        ("billing:dunningaction_list", _("Dunning history"), _("Dunning")),
        ("billing:dunningassignment_list", _("Dunning policy per account"), _("Dunning")),
        ("billing:dunningpolicy_list", _("Dunning policies"), _("Dunning")),
        ("ledger:transfer_list", _("Transfers"), _("Ledger")),
        ("ledger:hold_list", _("Holds"), _("Ledger")),
        ("ledger:ledgeraccount_list", _("Ledger accounts"), _("Ledger")),
    ]),
    (NETWORK, [
        ("aaa:nas_health", _("NAS health"), _("Access (RADIUS)")),
        ("aaa:coaattempt_list", _("CoA/DM log"), _("Access (RADIUS)")),
        ("aaa:reconciliationrun_list", _("Reconciliation runs"), _("Access (RADIUS)")),
        ("rating:usage_import", _("Import usage"), ""),
        ("rating:usagebatch_list", _("Usage imports"), ""),
        ("rating:ratedusage_list", _("Rated usage"), ""),
        ("rating:rejectedusage_list", _("Rejected usage"), ""),
        ("rating:bundlecounter_list", _("Free units used"), ""),
        ("rating:rerate", _("Re-rate a period"), ""),
        ("rating:reraterun_list", _("Re-ratings"), ""),
        ("aaa:session_list", _("Online sessions"), _("Access (RADIUS)")),
        ("aaa:finishedsession_list", _("Session history"), _("Access (RADIUS)")),
        ("aaa:authattempt_list", _("Authentication log"), _("Access (RADIUS)")),
        ("aaa:nas_list", _("NAS"), _("Access (RADIUS)")),
        ("aaa:profile_list", _("Access profiles"), _("Access (RADIUS)")),
        ("aaa:accesssettings_list", _("Subscribers' access settings"), _("Access (RADIUS)")),
    ]),
    (WAREHOUSE, [
        ("inventory:device_list", _("Devices"), ""),
        ("inventory:receive", _("Goods receipt (scanner)"), ""),
        ("inventory:move", _("Move goods"), ""),
        ("inventory:my_stock", _("My stock"), ""),
        ("inventory:location_list", _("Stock locations"), ""),
        ("inventory:move_list", _("Stock moves"), ""),
        ("inventory:reservation_list", _("Reservations"), ""),
        ("inventory:stocktake_list", _("Stocktakes"), ""),
        ("inventory:item_list", _("Items"), ""),
        ("inventory:reports", _("Stock reports"), ""),
    ]),
    (CATALOG, [
        ("catalog:service_list", _("Services"), ""),
        ("catalog:tariff_list", _("Tariffs"), ""),
        ("catalog:priceversion_list", _("Price versions"), ""),
        ("catalog:onetimefee_list", _("One-time fees"), ""),
        ("catalog:tariffparameter_list", _("Tariff parameters"), ""),
        ("catalog:servicetype_list", _("Service types"), ""),
        ("catalog:channel_list", _("TV channels"), ""),
        ("catalog:channelpackage_list", _("Channel packages"), ""),
        ("catalog:channelprice_list", _("Channel prices"), ""),
        ("catalog:tax_list", _("Taxes"), ""),
        ("crm:taxscheme_list", _("Tax schemes"), ""),
        ("catalog:exchange", _("Catalog file"), ""),
        ("rating:bundle_list", _("Bundles (free units)"), _("Rating")),
        ("rating:tariffrating_list", _("Tariffs' rating"), _("Rating")),
        ("rating:calculator", _("Cost calculator"), _("Rating")),
        ("rating:ratingplan_list", _("Rating plans"), _("Rating")),
        ("rating:ratingprofile_list", _("Rating profiles"), _("Rating")),
        ("rating:destination_list", _("Destinations"), _("Rating")),
        ("rating:destinationprefix_list", _("Prefix table"), _("Rating")),
        ("rating:prefix_upload", _("Upload a prefix table"), _("Rating")),
        ("rating:destinationrate_list", _("Destination rates"), _("Rating")),
        ("rating:rate_list", _("Rates"), _("Rating")),
        ("rating:timing_list", _("Timings"), _("Rating")),
        ("rating:usagetype_list", _("Usage types"), _("Rating")),
        ("rating:usageformat_list", _("Usage formats"), _("Rating")),
        ("rating:ratingtenant_list", _("Rating tenants"), _("Rating")),
        ("rating:cgrates", _("CGRateS tariff plans"), _("Rating")),
    ]),
    (REPORTS, [
        ("billing:check", _("Revenue assurance"), ""),
        ("ledger:check", _("Ledger check"), ""),
        ("inventory:check", _("Inventory check"), ""),
        ("integrations:notification_list", _("Notification log"), ""),
        ("audit:auditevent_list", _("Audit trail"), ""),
        ("web:jobs", _("Background jobs"), ""),
    ]),
    (ADMINISTRATION, [
        ("identity:user_list", _("Users"), ""),
        ("identity:role_list", _("Roles"), ""),
        ("identity:apitoken_list", _("API tokens"), ""),
        ("branches:branch_list", _("Branches"), ""),
        ("payments:paymentgateway_list", _("Payment gateways"), ""),
        ("integrations:notificationtemplate_list", _("Notification templates"), ""),
        ("billing:documenttemplate_list", _("Document templates"), ""),
        ("scripts:script_list", _("Scripts"), _("Scripts")),
        ("scripts:scriptrun_list", _("Script runs"), _("Scripts")),
        ("scripts:scriptversion_list", _("Script versions"), _("Scripts")),
    ]),
]

# Where a screen or page not placed in MENU goes, by its area.
AREA_GROUPS = {"Customers": FRONT_OFFICE, "Payments": CASH_DESK, "Billing": BILLING, "Usage": NETWORK,
               "Catalog": CATALOG, "Reports": REPORTS, "Warehouse": WAREHOUSE, "Operations": ADMINISTRATION,
               "Administration": ADMINISTRATION}

_LABELS = {name: label for _group, entries in MENU for name, label, _section in entries}


def screen_label(screens) -> str:
    """The menu label of a screen's list, which is also its heading."""
    label = _LABELS.get(screens.url_name("list"))
    return str(label) if label else capfirst(str(screens.menu_label or screens.verbose_name_plural))


def _candidates():
    """{url name: (label, permission, area)} of every screen list and page that may be in the menu."""
    found = {}
    for s in registry.all_screens():
        if s.menu:
            found[s.url_name("list")] = (screen_label(s), s.perm("view"), s.area)
    for page in registry.all_pages():
        if page.menu:
            found[page.name] = (str(_LABELS.get(page.name) or page.label), page.permission, page.area)
    return found


def menu_for(user) -> list[dict]:
    """[{"label", "sections": [(section, [(label, url)])]}] of what `user` may open."""
    if user is None or not user.is_authenticated:
        return []
    candidates = _candidates()
    placed = set()
    groups = []
    for group, entries in MENU:
        items = []
        for name, _label, section in entries:
            if name in candidates:
                placed.add(name)
                items.append((str(section), name))
        for name, (_l, _p, area) in candidates.items():
            if name not in placed and name not in _LABELS and AREA_GROUPS.get(area, ADMINISTRATION) == group:
                placed.add(name)
                items.append(("", name))
        sections: dict[str, list] = {}
        for section, name in items:
            label, perm, _area = candidates[name]
            if perm is not None and not user.has_perm(perm):
                continue
            try:
                url = reverse(name)
            except NoReverseMatch:
                continue
            sections.setdefault(section, []).append((label, url))
        if sections:
            groups.append({"label": str(group), "sections": list(sections.items())})
    return groups
