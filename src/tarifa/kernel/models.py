"""Base models every business record builds on."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .clock import now
from .ids import uuid7


def local_branch_code() -> str:
    return settings.TARIFA_BRANCH_CODE


class BusinessRecord(models.Model):
    """A record with a time-ordered UUID and the code of the branch that owns it (rule 9)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=local_branch_code, editable=False, db_index=True)
    created_at = models.DateTimeField(_("created"), default=now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=now, editable=False)

    class Meta:
        abstract = True


class Archivable(models.Model):
    """Business objects are archived, never deleted."""

    archived_at = models.DateTimeField(_("archived"), null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class WorkBatch(models.Model):
    """One batch of a long run handed to the workers (`kernel.batches`): the ids in [low, high] of
    the run's accounts. A concrete batch adds its `run` foreign key (related_name "batches"), its
    constraint on (run, seq) and its index of pending batches."""

    id = models.BigAutoField(primary_key=True)
    seq = models.PositiveIntegerField(_("batch"))
    low = models.UUIDField(_("lowest account id"))
    high = models.UUIDField(_("highest account id"))
    done = models.BooleanField(_("done"), default=False)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    result = models.JSONField(_("result"), default=dict, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["run", "seq"]
        default_permissions = ()

    def __str__(self):
        return f"{self.run_id} #{self.seq}"


class NumberSequence(models.Model):
    """Gap-free counters for human-facing numbers, one row per (branch, series).

    The row is locked while a number is taken, so numbers are sequential without
    gaps and never reused, in the same transaction as the record that uses it.
    """

    branch = models.CharField(max_length=16)
    series = models.CharField(max_length=32)
    last_value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["branch", "series"], name="kernel_sequence_unique")]


class DomainEvent(models.Model):
    """Outbox: an event written in the transaction of the change that caused it (rule 2)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    name = models.CharField(max_length=100, db_index=True)
    branch = models.CharField(max_length=16, default=local_branch_code)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(default=now)
    handled_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["handled_at", "occurred_at"], name="kernel_event_pending")]
