"""Recorded writes: the generic create / update / archive every service builds on.

Each call validates the record (field errors raised as `ValidationFailed`), writes it
and its audit event in one transaction. Apps call these from their own services,
never from views.
"""

import datetime as dt
import decimal
import uuid

from django.core.exceptions import ValidationError
from django.db import models, transaction

from tarifa.kernel.clock import now
from tarifa.kernel import ownership
from tarifa.kernel.errors import DomainError, ValidationFailed

from . import context
from .models import AuditEvent

SKIPPED_FIELDS = {"updated_at", "password"}


def _plain(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (decimal.Decimal, uuid.UUID, dt.date, dt.datetime, dt.time)):
        return str(value)
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return str(value)


def snapshot(obj: models.Model) -> dict:
    """The record's concrete field values as JSON-ready data."""
    data = {}
    for field in obj._meta.concrete_fields:
        if field.name in SKIPPED_FIELDS:
            continue
        value = getattr(obj, field.attname)
        if getattr(field, "secret", False):  # kernel.secrets.EncryptedTextField: never the value
            from tarifa.kernel.secrets import fingerprint

            value = fingerprint(value)
        data[field.name] = _plain(value)
    return data


def diff(before: dict, after: dict) -> dict:
    return {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username()


def record(obj: models.Model, *, actor, action: str, changes: dict | None = None, message: str = "") -> AuditEvent:
    # Every audited write passes here (create, update, archive, restore, deletes of parts), inside its
    # transaction: on a branch, a write of centrally owned reference data is refused (kernel/ownership.py).
    ownership.check_local_edit(obj)
    ctx = context.current()
    user = actor if actor is not None and not isinstance(actor, str) and getattr(actor, "pk", None) else None
    return AuditEvent.objects.create(
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action=action,
        actor=user,
        actor_label=actor_label(actor)[:150],
        request_id=ctx.request_id,
        ip=ctx.ip or None,
        channel=ctx.channel,
        changes=changes or {},
        message=message,
    )


def validate(obj: models.Model, exclude=None) -> None:
    try:
        obj.full_clean(exclude=exclude)
    except ValidationError as exc:
        fields = {k: [str(m) for m in v] for k, v in exc.message_dict.items()}
        first = next(iter(fields.items()))
        raise ValidationFailed(f"{first[0]}: {first[1][0]}", fields=fields) from None


@transaction.atomic
def create(model: type[models.Model], *, actor, message: str = "", **fields) -> models.Model:
    obj = model(**fields)
    validate(obj)
    obj.save(force_insert=True)
    record(obj, actor=actor, action="create", changes=diff({}, snapshot(obj)), message=message)
    return obj


UNSET = object()


@transaction.atomic
def update(obj: models.Model, *, actor, message: str = "", action: str = "update", **changes) -> models.Model:
    """Apply `changes` to `obj`; records only fields whose value changed. Locks the row."""
    obj = type(obj).objects.select_for_update().get(pk=obj.pk)
    if getattr(obj, "archived_at", None) is not None and action == "update":
        raise DomainError(f"{obj} is archived and cannot be changed.", code="archived")
    before = snapshot(obj)
    for name, value in changes.items():
        setattr(obj, name, value)
    validate(obj)
    after = snapshot(obj)
    delta = diff(before, after)
    if delta:
        if hasattr(obj, "updated_at"):
            obj.updated_at = now()
        obj.save()
        record(obj, actor=actor, action=action, changes=delta, message=message)
    return obj


@transaction.atomic
def archive(obj: models.Model, *, actor, reason: str = "") -> models.Model:
    """Archive instead of delete: the record stays, marked, with who and why."""
    obj = type(obj).objects.select_for_update().get(pk=obj.pk)
    if obj.archived_at is not None:
        raise DomainError(f"{obj} is already archived.", code="already_archived", status=409)
    obj.archived_at = now()
    obj.save(update_fields=["archived_at"])
    record(obj, actor=actor, action="archive", changes={"archived_at": [None, str(obj.archived_at)]}, message=reason)
    return obj


@transaction.atomic
def restore(obj: models.Model, *, actor, reason: str = "") -> models.Model:
    obj = type(obj).objects.select_for_update().get(pk=obj.pk)
    if obj.archived_at is None:
        raise DomainError(f"{obj} is not archived.", code="not_archived", status=409)
    was = obj.archived_at
    obj.archived_at = None
    obj.save(update_fields=["archived_at"])
    record(obj, actor=actor, action="restore", changes={"archived_at": [str(was), None]}, message=reason)
    return obj
