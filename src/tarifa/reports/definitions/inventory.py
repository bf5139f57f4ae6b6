"""Inventory reports: stock on hand and the devices at customer premises. Read from the inventory's
stock (kept with its moves) and devices, and the subscriptions' device agreements."""

from ..framework import COUNT, MONEY, NUMBER, Chart, Column, Report, register, sql
from .common import choices_of

register(Report(
    code="stock-on-hand", name="Stock on hand", group="Inventory", permission="inventory.view_stock",
    period=False,
    description="On hand now per location and item (real locations: warehouses, technicians, customer "
                "premises, in transit; not the virtual supplier, scrap and adjustment ones), and its value at "
                "purchase cost: the devices' own costs for items tracked by serial, the quantity times the "
                "item's cost for goods counted by quantity, in the item's currency.",
    source="inventory stock per location and item, devices (serial items' cost), items (cost per unit)",
    columns=[Column("location", "Location"), Column("location_kind", "Kind",
                                                    labels=choices_of("inventory.Location", "kind")),
             Column("item", "Item"), Column("item_name", "Model"),
             Column("unit", "Unit", labels=choices_of("inventory.Item", "unit")),
             Column("quantity", "On hand", NUMBER), Column("currency", "Currency"),
             Column("value", "Value at cost", MONEY, total=True)],
    query=lambda p: sql("""SELECT l.code AS location, l.kind AS location_kind, i.code AS item,
       trim(i.vendor || ' ' || i.name) AS item_name, i.unit, st.quantity, i.currency,
       CASE WHEN i.tracking = 'serial'
            THEN (SELECT coalesce(sum(d.cost), 0) FROM inventory_device d WHERE d.item_id = i.id AND d.location_id = l.id)
            ELSE st.quantity * i.cost END AS value
       FROM inventory_stock st JOIN inventory_location l ON l.id = st.location_id
       JOIN inventory_item i ON i.id = st.item_id
      WHERE NOT st.virtual AND st.quantity <> 0 ORDER BY l.code, i.code"""),
    chart=Chart(x="location", y="value", series="currency")))

# A device at a customer's premises is linked to a subscription by its running device agreement
# (rent, sale by installments) or, failing that, by the subscription it was installed for
# (`subscription_ref`: the subscription's number, or its id from older installs).
register(Report(
    code="devices-installed-per-tariff", name="Devices installed per tariff", group="Inventory",
    permission="inventory.view_device", period=False,
    description="Devices at customer premises now, per tariff of the subscription each serves (by its running "
                "device agreement, else the subscription it was installed for) and item kind; devices linked "
                "to no subscription are counted under “(none)”.",
    source="inventory devices at customer locations, subscriptions' device agreements and subscriptions",
    columns=[Column("tariff", "Tariff"), Column("tariff_name", "Tariff name"),
             Column("item_kind", "Item kind", labels=choices_of("inventory.Item", "kind")),
             Column("devices", "Devices", COUNT, total=True),
             Column("subscriptions", "Subscriptions", COUNT, total=True)],
    query=lambda p: sql("""SELECT coalesce(t.code, '(none)') AS tariff, coalesce(t.name, '') AS tariff_name,
       i.kind AS item_kind, count(*) AS devices, count(DISTINCT link.subscription_id) AS subscriptions
       FROM inventory_device d JOIN inventory_location l ON l.id = d.location_id AND l.kind = 'customer'
       JOIN inventory_item i ON i.id = d.item_id
       LEFT JOIN LATERAL (
            SELECT coalesce(
              (SELECT a.subscription_id FROM subscriptions_deviceagreement a
                WHERE a.device_id = d.id AND a.ended_on IS NULL ORDER BY a.started_on DESC LIMIT 1),
              (SELECT s.id FROM subscriptions_subscription s
                WHERE d.subscription_ref <> '' AND (s.number = d.subscription_ref OR s.id::text = d.subscription_ref)
                LIMIT 1)) AS subscription_id) link ON true
       LEFT JOIN subscriptions_subscription s ON s.id = link.subscription_id
       LEFT JOIN catalog_tariff t ON t.id = s.tariff_id
      GROUP BY 1, 2, 3 ORDER BY 1, 3"""),
    chart=Chart(x="tariff", y="devices", series="item_kind")))
