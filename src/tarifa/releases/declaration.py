"""The one declaration of the reference data the centre owns and publishes in releases (issue 19).

Order matters: a part comes after the parts its foreign keys point to (applied in this order, removed
in the reverse one). `key` names the fields that identify a row across nodes (its natural key; a foreign
key stands for the referenced row's natural key, never for the centre's UUID); `key=None` means the
whole row is its identity (parts without a natural key of their own: a rate's slots, a plan's bindings).
Every other editable concrete field and many-to-many field travels. Archived rows do not travel: a row
the release no longer has is archived on the branch (deleted when the model cannot be archived and no
local record refers to it).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    label: str  # "app_label.ModelName"
    key: tuple[str, ...] | None


PARTS: tuple[Part, ...] = (
    # dictionaries
    Part("crm.TaxScheme", ("code",)),
    Part("catalog.ServiceType", ("code",)),
    Part("rating.UsageType", ("code",)),
    # catalog: products, taxes, TV channels, tariffs and their price versions, device prices
    Part("catalog.Service", ("code",)),
    Part("catalog.Tax", ("code",)),
    Part("catalog.Channel", ("code",)),
    Part("catalog.ChannelPackage", ("code",)),
    Part("catalog.Tariff", ("code",)),
    Part("catalog.TariffParameter", ("tariff", "code")),
    Part("catalog.PriceVersion", ("tariff", "valid_from")),
    Part("catalog.OneTimeFee", ("price_version", "kind")),
    Part("catalog.ChannelPrice", ("price_version", "channel", "package")),
    Part("catalog.DevicePrice", ("code",)),
    # rating: tenants, destinations, timings, rates, rating plans, profiles; tariffs' rating and bundles
    Part("rating.RatingTenant", ("code",)),
    Part("rating.Destination", ("tenant", "code")),
    Part("rating.DestinationPrefix", ("destination", "prefix")),
    Part("rating.Timing", ("tenant", "code")),
    Part("rating.Rate", ("tenant", "code")),
    Part("rating.RateSlot", None),
    Part("rating.DestinationRate", ("tenant", "code", "destination")),
    Part("rating.RatingPlan", ("tenant", "code")),
    Part("rating.RatingPlanBinding", None),
    Part("rating.RatingProfile", ("tenant", "category", "subject", "activation_time")),
    Part("rating.TariffRating", ("tariff",)),
    Part("rating.Bundle", ("tariff", "code")),
    # number ranges the centre allocates to each branch
    Part("releases.NumberRange", ("kind", "first")),
)

LABELS = tuple(p.label for p in PARTS)
