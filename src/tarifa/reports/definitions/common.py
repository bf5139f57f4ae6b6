"""Parameters and SQL pieces several reports share."""

from tarifa.kernel.money import CURRENCY_CHOICES

from ..framework import Param, bounds, tz_name


def _service_types():
    from tarifa.catalog.models import ServiceType

    return [(c, n) for c, n in ServiceType.objects.order_by("code").values_list("code", "name")]


def _tariffs():
    from tarifa.catalog.models import Tariff

    return [(c, n) for c, n in Tariff.objects.order_by("code").values_list("code", "name")]


def _services():
    from tarifa.catalog.models import Service

    return [(c, n) for c, n in Service.objects.order_by("code").values_list("code", "name")]


def _desks():
    from tarifa.payments.models import CashDesk

    return [(c, n) for c, n in CashDesk.objects.order_by("code").values_list("code", "name")]


def _channels():
    from tarifa.payments.models import Channel

    return list(Channel.choices)


def _branches():
    from tarifa.branches.models import Branch
    from tarifa.kernel.models import local_branch_code

    known = [(c, n) for c, n in Branch.objects.order_by("code").values_list("code", "name")]
    local = local_branch_code()
    return known if local in {c for c, _ in known} else [(local, local), *known]


def _usage_types():
    from tarifa.rating.models import UsageType

    return [(c, n) for c, n in UsageType.objects.order_by("code").values_list("code", "name")]


CURRENCY = Param("currency", "Currency", "choice", lambda: list(CURRENCY_CHOICES))
SERVICE_TYPE = Param("service_type", "Service type", "choice", _service_types)
SERVICE = Param("service", "Service", "choice", _services)
TARIFF = Param("tariff", "Tariff", "choice", _tariffs)
DESK = Param("desk", "Cash desk", "choice", _desks)
CHANNEL = Param("channel", "Channel", "choice", _channels)
BRANCH = Param("branch", "Branch", "choice", _branches)
USAGE_TYPE = Param("usage_type", "Usage type", "choice", _usage_types)


def choices_of(model_path: str, field: str):
    """A model field's choices as {code: words}, for Column(labels=...)."""
    def labels():
        from django.apps import apps

        app, model = model_path.split(".")
        return {k: str(v) for k, v in apps.get_model(app, model)._meta.get_field(field).choices or ()}

    return labels


def args(params: dict, **extra) -> dict:
    """The SQL arguments every query may use: start, end (instants), day_from, day_to, tz, and
    each optional filter (None when not given)."""
    start, end = bounds(params) if "from" in params else (None, None)
    out = {"start": start, "end": end, "day_from": params.get("from"), "day_to": params.get("to"), "tz": tz_name()}
    for name in ("currency", "service_type", "service", "tariff", "desk", "channel", "branch", "usage_type"):
        out[name] = params.get(name)
    out.update(extra)
    return out


def day(column: str) -> str:
    """A timestamp column as the operator's calendar day."""
    return f"(({column}) AT TIME ZONE %(tz)s)::date"
