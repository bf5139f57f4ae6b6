"""The catalog as one JSON document: export here, import there (central node → branches).

Records are matched by code (price versions by tariff and date). Import goes through
the services: new records are created, changed ones updated, price versions that
exist with other prices are a conflict (an applied version never changes). The whole
import is one transaction: one bad record writes nothing.
"""

import datetime as dt

from django.db import transaction

from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, ValidationFailed

from . import services
from .models import Channel, ChannelPackage, DevicePrice, PriceVersion, Service, ServiceType, Tariff, Tax

FORMAT = "tarifa-catalog"
VERSION = 1


def _d(value):
    return str(value) if value is not None else None


def export_catalog() -> dict:
    """Every catalog record (archived ones too, marked) as JSON-ready data."""
    def arch(obj):
        return {"archived": obj.archived_at is not None}

    return {
        "format": FORMAT, "version": VERSION, "exported_at": now().isoformat(),
        "service_types": [{"code": o.code, "name": o.name, "category": o.category,
                           "identifier_kinds": o.identifier_kinds, "description": o.description, **arch(o)}
                          for o in ServiceType.objects.order_by("code")],
        "services": [{"code": o.code, "name": o.name, "service_type": o.service_type.code,
                      "description": o.description, **arch(o)}
                     for o in Service.objects.select_related("service_type").order_by("code")],
        "taxes": [{"code": o.code, "name": o.name, "rate": str(o.rate), "inclusive": o.inclusive,
                   "service_types": sorted(st.code for st in o.service_types.all()),
                   "valid_from": _d(o.valid_from), "valid_to": _d(o.valid_to), **arch(o)}
                  for o in Tax.objects.prefetch_related("service_types").order_by("code")],
        "channels": [{"code": o.code, "name": o.name, "number": o.number, **arch(o)}
                     for o in Channel.objects.order_by("code")],
        "channel_packages": [{"code": o.code, "name": o.name, "channels": sorted(c.code for c in o.channels.all()),
                              **arch(o)} for o in ChannelPackage.objects.prefetch_related("channels").order_by("code")],
        "tariffs": [_tariff(t) for t in Tariff.objects.select_related("service").order_by("code")],
        "device_prices": [{"code": o.code, "name": o.name, "currency": o.currency, "sale_price": str(o.sale_price),
                           "monthly_rent": str(o.monthly_rent), "installment_total": str(o.installment_total),
                           "installment_months": o.installment_months, "description": o.description, **arch(o)}
                          for o in DevicePrice.objects.order_by("code")],
    }


def _tariff(t) -> dict:
    data = {name: getattr(t, name) for name in services.TARIFF_FIELDS if name not in ("service",)}
    for name in ("suspend_below", "resume_at", "warn_below", "promised_payment_amount"):
        data[name] = _d(data[name])
    data["service"] = t.service.code
    data["archived"] = t.archived_at is not None
    data["parameters"] = [{"code": p.code, "label": p.label, "kind": p.kind, "value": p.value, "choices": p.choices,
                           "required": p.required, "unit": p.unit} for p in t.parameters.order_by("code")]
    data["price_versions"] = [
        {"valid_from": str(v.valid_from), "recurring_fee": str(v.recurring_fee), "note": v.note,
         "one_time_fees": {f.kind: str(f.amount) for f in v.one_time_fees.order_by("kind")},
         "channel_prices": [{"channel": p.channel.code} if p.channel_id else {"package": p.package.code}
                            for p in v.channel_prices.select_related("channel", "package")]}
        for v in t.price_versions.order_by("valid_from")]
    for version, v in zip(data["price_versions"], t.price_versions.order_by("valid_from")):
        for item, p in zip(version["channel_prices"], v.channel_prices.select_related("channel", "package")):
            item["amount"] = str(p.amount)
    return data


def _upsert(model, create, update, *, actor, code, fields, stats, key):
    obj = model.objects.filter(code=code).first()
    archived = fields.pop("archived", False)
    if obj is None:
        obj = create(actor=actor, code=code, **fields)
        stats[key]["created"] += 1
    else:
        changed = {k: v for k, v in fields.items() if _differs(getattr(obj, k, None), v)}
        if changed and obj.archived_at is None:
            obj = update(obj, actor=actor, **changed)
            stats[key]["updated"] += 1
        else:
            stats[key]["unchanged"] += 1
    if archived and obj.archived_at is None:
        services.archive(obj, actor=actor, reason="archived in the imported catalog")
    return obj


def _differs(current, new):
    if hasattr(current, "all") or isinstance(new, list) and new and hasattr(new[0], "_meta"):
        return True  # relations: let the service compare
    return str(current) != str(new) if current is not None or new is not None else False


def _date(value, field):
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{field}: {value!r} is not a date (YYYY-MM-DD).", code="invalid_date") from None


def _by_code(model, code, where):
    obj = model.objects.filter(code=code).first()
    if obj is None:
        raise ValidationFailed(f"{where}: unknown {model._meta.verbose_name} {code!r}.", code="unknown_reference")
    return obj


@transaction.atomic
def import_catalog(data: dict, *, actor) -> dict:
    """Apply an exported catalog; returns counts per kind (created / updated / unchanged)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationFailed("Not a Tarifa catalog file.", code="invalid_catalog_file")
    if data.get("version") != VERSION:
        raise ValidationFailed(f"Unsupported catalog file version {data.get('version')!r}.",
                               code="invalid_catalog_file")
    kinds = ["service_types", "services", "taxes", "channels", "channel_packages", "tariffs", "parameters",
             "price_versions", "device_prices"]
    stats = {k: {"created": 0, "updated": 0, "unchanged": 0} for k in kinds}
    try:
        for row in data.get("service_types", []):
            row = dict(row)
            _upsert(ServiceType, services.create_service_type, services.update_service_type, actor=actor,
                    code=row.pop("code"), fields=row, stats=stats, key="service_types")
        for row in data.get("services", []):
            row = dict(row)
            row["service_type"] = _by_code(ServiceType, row["service_type"], f"service {row['code']}")
            _upsert(Service, services.create_service, services.update_service, actor=actor, code=row.pop("code"),
                    fields=row, stats=stats, key="services")
        for row in data.get("taxes", []):
            row = dict(row)
            code = row.pop("code")
            row["service_types"] = [_by_code(ServiceType, c, f"tax {code}") for c in row.get("service_types", [])]
            row["valid_from"] = _date(row.get("valid_from"), "valid_from")
            row["valid_to"] = _date(row.get("valid_to"), "valid_to")
            _upsert(Tax, services.create_tax, services.update_tax, actor=actor, code=code, fields=row, stats=stats,
                    key="taxes")
        for row in data.get("channels", []):
            row = dict(row)
            _upsert(Channel, services.create_channel, services.update_channel, actor=actor, code=row.pop("code"),
                    fields=row, stats=stats, key="channels")
        for row in data.get("channel_packages", []):
            row = dict(row)
            code = row.pop("code")
            row["channels"] = [_by_code(Channel, c, f"package {code}") for c in row.get("channels", [])]
            _upsert(ChannelPackage, services.create_channel_package, services.update_channel_package, actor=actor,
                    code=code, fields=row, stats=stats, key="channel_packages")
        for row in data.get("tariffs", []):
            _import_tariff(dict(row), actor=actor, stats=stats)
        for row in data.get("device_prices", []):
            row = dict(row)
            _upsert(DevicePrice, services.create_device_price, services.update_device_price, actor=actor,
                    code=row.pop("code"), fields=row, stats=stats, key="device_prices")
    except KeyError as exc:
        raise ValidationFailed(f"Catalog file: missing field {exc.args[0]!r}.", code="invalid_catalog_file") from None
    return stats


def _import_tariff(row, *, actor, stats):
    code = row.pop("code")
    params = row.pop("parameters", [])
    versions = row.pop("price_versions", [])
    row["service"] = _by_code(Service, row["service"], f"tariff {code}")
    is_new = not Tariff.objects.filter(code=code).exists()
    tariff = _upsert(Tariff, services.create_tariff, services.update_tariff, actor=actor, code=code, fields=row,
                     stats=stats, key="tariffs")
    for p in params:
        p = dict(p)
        existing = tariff.parameters.filter(code=p["code"]).first()
        if existing is None:
            services.create_parameter(actor=actor, tariff=tariff, **p)
            stats["parameters"]["created"] += 1
        else:
            changed = {k: v for k, v in p.items() if k != "code" and getattr(existing, k) != v}
            if changed:
                services.update_parameter(existing, actor=actor, **changed)
                stats["parameters"]["updated"] += 1
            else:
                stats["parameters"]["unchanged"] += 1
    for v in sorted(versions, key=lambda x: x["valid_from"]):
        valid_from = _date(v["valid_from"], "valid_from")
        fees = v.get("one_time_fees", {})
        prices = [{"channel": _by_code(Channel, p["channel"], f"tariff {code}") if p.get("channel") else None,
                   "package": _by_code(ChannelPackage, p["package"], f"tariff {code}") if p.get("package") else None,
                   "amount": p["amount"]} for p in v.get("channel_prices", [])]
        existing = PriceVersion.objects.filter(tariff=tariff, valid_from=valid_from).first()
        if existing is not None:
            same = (existing.recurring_fee == services._money(v["recurring_fee"], "recurring_fee")
                    and {f.kind: f.amount for f in existing.one_time_fees.all()}
                    == {k: services._money(a, k) for k, a in fees.items()})
            if same:
                stats["price_versions"]["unchanged"] += 1
                continue
            if existing.has_applied:
                raise Conflict(f"Tariff {code}: the price version from {valid_from} has applied here with other "
                               "prices and cannot change.", code="version_applied")
            raise Conflict(f"Tariff {code}: a different price version from {valid_from} exists; change it here "
                           "or remove it from the file.", code="duplicate_version")
        services.create_price_version(actor=actor, tariff=tariff, valid_from=valid_from,
                                      recurring_fee=v["recurring_fee"], note=v.get("note", ""), one_time_fees=fees,
                                      channel_prices=prices, copy_previous=False, allow_past=is_new)
        stats["price_versions"]["created"] += 1
