"""A release's content: the declared reference data as canonical JSON by natural keys (`snapshot`), the
difference between two contents (`diff`), and applying a content to this node's tables (`apply`).

Content (format 1): {"format": 1, "parts": [{"model": "catalog.Tariff", "rows": [{field: value, …}, …]}, …]}
in the order of `declaration.PARTS`; a row holds every editable concrete field and many-to-many field; a
foreign key is the referenced row's natural key (a list); decimals are strings as stored, dates ISO 8601;
rows are sorted by their key. The same data gives the same bytes on every node (`canonical`)."""

import datetime as dt
import decimal
import hashlib
import json
from collections import defaultdict

from django.apps import apps
from django.db import IntegrityError, models, transaction
from django.db.models import ProtectedError

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7

from .declaration import PARTS, Part

FORMAT = 1  # the newest content format this code reads and writes


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def model_of(part: Part) -> type[models.Model]:
    return apps.get_model(part.label)


def fields_of(model) -> list:
    return [f for f in model._meta.concrete_fields if f.editable and not f.primary_key]


def m2m_of(model) -> list:
    return [f for f in model._meta.many_to_many if f.editable]


def archivable(model) -> bool:
    return any(f.name == "archived_at" for f in model._meta.concrete_fields)


def _plain(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


def row_of(obj, model, keys: dict) -> dict:
    """The release row of `obj`; `keys[label][pk]` is the natural key of rows foreign keys point to.
    Returns None when a foreign key points to a row that is not in the release."""
    row = {}
    for f in fields_of(model):
        if f.is_relation:
            pk = getattr(obj, f.attname)
            if pk is None:
                row[f.name] = None
                continue
            target = keys[f.related_model._meta.label].get(pk)
            if target is None:
                return None
            row[f.name] = target
        else:
            row[f.name] = _plain(getattr(obj, f.attname))
    for f in m2m_of(model):
        targets = keys[f.related_model._meta.label]
        row[f.name] = sorted((targets[pk] for pk in f.value_from_object(obj) if pk in targets), key=canonical)
    return row


def key_of(part: Part, row: dict):
    return [row[name] for name in part.key] if part.key else row


def snapshot() -> dict:
    """The centre's live reference data, by natural keys (archived rows and rows that depend on them are left
    out: a branch archives them)."""
    keys: dict[str, dict] = defaultdict(dict)
    parts = []
    for part in PARTS:
        model = model_of(part)
        qs = model._default_manager.all()
        if archivable(model):
            qs = qs.filter(archived_at__isnull=True)
        if m2m_of(model):
            qs = qs.prefetch_related(*(f.name for f in m2m_of(model)))
        rows = []
        for obj in qs.iterator(chunk_size=2000) if not m2m_of(model) else qs:
            row = row_of(obj, model, keys)
            if row is None:
                continue
            keys[part.label][obj.pk] = key_of(part, row)
            rows.append(row)
        rows.sort(key=lambda r: canonical(key_of(part, r)))
        parts.append({"model": part.label, "rows": rows})
    return {"format": FORMAT, "parts": parts}


def diff(before: dict | None, after: dict, *, listed: int = 20) -> dict:
    """Per part: rows added, changed and removed (counts, and up to `listed` keys of each)."""
    old = {p["model"]: p["rows"] for p in (before or {}).get("parts", [])}
    out = {}
    for part in PARTS:
        new_rows = next((p["rows"] for p in after["parts"] if p["model"] == part.label), [])
        a = {canonical(key_of(part, r)): r for r in old.get(part.label, [])}
        b = {canonical(key_of(part, r)): r for r in new_rows}
        added = [k for k in b if k not in a]
        removed = [k for k in a if k not in b]
        changed = [k for k in b if k in a and canonical(a[k]) != canonical(b[k])]
        if added or removed or changed:
            def show(ks):
                return [json.loads(k) for k in ks[:listed]]
            out[part.label] = {"added": len(added), "changed": len(changed), "removed": len(removed),
                               "added_keys": show(added), "changed_keys": show(changed),
                               "removed_keys": show(removed)}
    return out


def counts(content: dict) -> dict:
    return {p["model"]: len(p["rows"]) for p in content["parts"]}


class ContentError(Exception):
    """The content does not fit this node's tables (a foreign key to a row the release does not have…)."""


def _resolve(value, f, index):
    """A release value for this node's field: a foreign key's natural key to this node's pk."""
    if f.is_relation and value is not None:
        pk = index[f.related_model._meta.label].get(canonical(value))
        if pk is None:
            raise ContentError(f"{f.model._meta.label}.{f.name}: no {f.related_model._meta.label} {value}")
        return pk
    if isinstance(f, models.DecimalField) and value is not None:
        return decimal.Decimal(value)
    return f.to_python(value) if value is not None and not isinstance(value, list | dict) else value


@transaction.atomic
def apply(content: dict, *, owner: str) -> dict:
    """Make this node's declared tables hold exactly `content` (call inside the release's transaction):
    rows matched by natural key are updated (an archived one is brought back), missing ones inserted (new
    UUIDs, owner branch `owner`), rows the content does not have archived — or deleted when the model cannot
    be archived and nothing local refers to them (kept otherwise). Returns counts per part."""
    by_label = {p["model"]: p["rows"] for p in content["parts"]}
    keys: dict[str, dict] = defaultdict(dict)  # label -> {pk: natural key} of this node's rows
    index: dict[str, dict] = defaultdict(dict)  # label -> {canonical key: pk} of the rows the release has
    leftovers: list[tuple[Part, list]] = []
    summary = {}
    stamp = now()
    for part in PARTS:
        model = model_of(part)
        can_archive = archivable(model)
        fields, m2m = fields_of(model), m2m_of(model)
        existing: dict[bytes, list] = defaultdict(list)
        qs = model._default_manager.all()
        if can_archive:
            qs = qs.order_by(models.F("archived_at").asc(nulls_first=True), "-updated_at")
        if m2m:
            qs = qs.prefetch_related(*(f.name for f in m2m))
        rows_here = {}
        for obj in qs:
            row = row_of(obj, model, keys)
            if row is None:  # refers to a local row outside the release: it cannot match a release row
                continue
            rows_here[obj.pk] = row
            keys[part.label][obj.pk] = key_of(part, row)
            existing[canonical(key_of(part, row))].append(obj)
        added = changed = 0
        inserts, updates, m2m_sets = [], [], []
        for row in by_label.get(part.label, []):
            k = canonical(key_of(part, row))
            matches = existing.get(k)
            obj = matches.pop(0) if matches else None
            values = {f.attname: _resolve(row.get(f.name), f, index) for f in fields}
            if obj is None:
                obj = model(id=uuid7(), **values)
                if hasattr(obj, "branch"):
                    obj.branch = owner
                inserts.append(obj)
                added += 1
            else:
                revived = can_archive and obj.archived_at is not None
                foreign = getattr(obj, "branch", owner) != owner  # a row made here (demo data) becomes the centre's
                if revived or foreign or canonical(rows_here[obj.pk]) != canonical(row):
                    if hasattr(obj, "branch"):
                        obj.branch = owner
                    for name, value in values.items():
                        setattr(obj, name, value)
                    if can_archive:
                        obj.archived_at = None
                    if hasattr(obj, "updated_at"):
                        obj.updated_at = stamp
                    updates.append(obj)
                    changed += 1
            for f in m2m:
                m2m_sets.append((obj, f, [index[f.related_model._meta.label][canonical(v)] for v in row[f.name]]))
            index[part.label][k] = obj.pk
            keys[part.label][obj.pk] = key_of(part, row)
        if inserts:
            model._default_manager.bulk_create(inserts, batch_size=2000)
        if updates:
            names = [f.attname for f in fields] + (["archived_at"] if can_archive else []) + [
                name for name in ("updated_at", "branch") if hasattr(model, name)]
            model._default_manager.bulk_update(updates, names, batch_size=2000)
        for obj, f, pks in m2m_sets:
            getattr(obj, f.name).set(pks)
        gone = [o for objs in existing.values() for o in objs if not (can_archive and o.archived_at is not None)]
        leftovers.append((part, gone))
        summary[part.label] = {"added": added, "changed": changed, "removed": 0, "kept_referenced": 0}
    for part, gone in reversed(leftovers):  # children first
        model = model_of(part)
        if archivable(model):
            model._default_manager.filter(pk__in=[o.pk for o in gone]).update(archived_at=stamp)
            summary[part.label]["removed"] += len(gone)
            continue
        for obj in gone:
            try:
                with transaction.atomic():
                    obj.delete()
                summary[part.label]["removed"] += 1
            except (ProtectedError, IntegrityError):
                summary[part.label]["kept_referenced"] += 1
    return {label: s for label, s in summary.items() if any(s.values())}
