"""Payment journals (FEDERATION.md piece 4; docs/federation.md "Payment journals").

At a branch: `JournalEntry` — every payment that moves money at or for this branch, one row per
(kind, reference); the sealer numbers them gap-free and chains their hashes (`JournalHead` holds the
chain's head), ships `SealedBatch`es and signed daily `Checkpoint`s to the centre.
At the centre: `ReceivedEntry` / `ReceivedHead` / `ReceivedCheckpoint` — its copy of every branch's
journal; `Mismatch` — what reconciliation found, a work item for operators (also kept at the branches
the centre reported it to)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.money import CURRENCY_CHOICES

GENESIS = "0" * 64  # the "previous hash" of entry 1


def own_code() -> str:
    return settings.TARIFA_NODE_CODE


def money_field(verbose_name, **kwargs):
    return models.DecimalField(verbose_name, max_digits=20, decimal_places=6, **kwargs)


class Kind(models.TextChoices):
    LOCAL = "local", _("local payment")
    LOCAL_REVERSAL = "local_reversal", _("local payment reversed")
    LOCAL_REFUND = "local_refund", _("local payment refunded")
    TAKEN_FOR = "taken_for", _("taken for another branch")
    TAKEN_FOR_REVERSAL = "taken_for_reversal", _("taken for another branch, reversed")
    APPLIED_FROM = "applied_from", _("applied, taken by another branch")
    APPLIED_FROM_REVERSAL = "applied_from_reversal", _("applied from another branch, reversed")


# Kinds whose amount is stored negative (money going back); the caller always gives a positive amount.
NEGATIVE_KINDS = frozenset({Kind.LOCAL_REVERSAL, Kind.LOCAL_REFUND, Kind.TAKEN_FOR_REVERSAL,
                            Kind.APPLIED_FROM_REVERSAL})
# Kinds that name another branch (the counterparty), and what the counterparty's journal must hold.
FOREIGN_KINDS = {Kind.TAKEN_FOR: Kind.APPLIED_FROM, Kind.TAKEN_FOR_REVERSAL: Kind.APPLIED_FROM_REVERSAL,
                 Kind.APPLIED_FROM: Kind.TAKEN_FOR, Kind.APPLIED_FROM_REVERSAL: Kind.TAKEN_FOR_REVERSAL}


class JournalEntry(models.Model):
    """One payment movement in this branch's journal. Written by `services.record_entry` (unique by
    branch, kind and reference), never changed afterwards except by the sealer, once: `seq`,
    `prev_hash`, `hash`, `sealed_at`."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=own_code, editable=False)
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    reference = models.CharField(_("reference"), max_length=100,
                                 help_text=_("The receipt number at the branch that took the payment."))
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, choices=CURRENCY_CHOICES)
    counterparty = models.CharField(_("counterparty"), max_length=16, blank=True)
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="journal_entries", verbose_name=_("payment"))
    occurred_at = models.DateTimeField(_("occurred"), default=now)
    recorded_at = models.DateTimeField(_("recorded"), default=now, editable=False)
    details = models.JSONField(_("details"), default=dict, blank=True)
    seq = models.BigIntegerField(_("number"), null=True, blank=True, editable=False)
    prev_hash = models.CharField(_("previous hash"), max_length=64, blank=True, editable=False)
    hash = models.CharField(_("hash"), max_length=64, blank=True, editable=False)
    sealed_at = models.DateTimeField(_("sealed"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("journal entry")
        verbose_name_plural = _("journal entries")
        ordering = ["branch", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["branch", "kind", "reference"], name="journals_entry_unique_ref"),
            models.UniqueConstraint(fields=["branch", "seq"], name="journals_entry_unique_seq"),
            models.CheckConstraint(condition=~models.Q(amount=0), name="journals_entry_amount_nonzero"),
        ]
        indexes = [models.Index(fields=["branch", "recorded_at"], condition=models.Q(seq__isnull=True),
                                name="journals_entry_unsealed")]

    def __str__(self):
        return f"{self.branch} #{self.seq or '—'} {self.kind} {self.reference}"


class JournalHead(models.Model):
    """The head of a branch's chain: the last number given and its hash. Its row lock serialises sealing."""

    branch = models.CharField(max_length=16, primary_key=True)
    last_seq = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default=GENESIS)


class SealedBatch(models.Model):
    """Entries first_seq..last_seq sealed together; shipped to the centre once (shipped_at)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(max_length=16, default=own_code)
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(default=now)
    shipped_at = models.DateTimeField(null=True, blank=True)
    shipped_to = models.CharField(max_length=16, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["branch", "first_seq"], name="journals_batch_unique")]


class Checkpoint(models.Model):
    """A branch's signed statement of its journal at the end of a day (UTC): entries first_seq..last_seq were
    sealed that day (count, sums per currency), and the chain's head after last_seq."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16, default=own_code)
    date = models.DateField(_("date"))
    body = models.JSONField(_("body"))  # what is signed: branch, date, first_seq, last_seq, count, sums, head_hash
    key_id = models.CharField(_("key id"), max_length=100)
    signature = models.CharField(_("signature"), max_length=200)
    created_at = models.DateTimeField(_("created"), default=now)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("journal checkpoint")
        verbose_name_plural = _("journal checkpoints")
        ordering = ["branch", "-date"]
        constraints = [models.UniqueConstraint(fields=["branch", "date"], name="journals_checkpoint_unique")]

    def __str__(self):
        return f"{self.branch} {self.date}"


# --- the centre's copies ---

class ReceivedEntry(models.Model):
    """The centre's copy of a branch's sealed entry, as the branch sent it (never changed)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16)
    seq = models.BigIntegerField(_("number"))
    entry_id = models.UUIDField(_("entry id"))
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    reference = models.CharField(_("reference"), max_length=100)
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    counterparty = models.CharField(_("counterparty"), max_length=16, blank=True)
    occurred_at = models.DateTimeField(_("occurred"))
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)
    sealed_at = models.DateTimeField(_("sealed"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), default=now)

    class Meta:
        verbose_name = _("received journal entry")
        verbose_name_plural = _("received journal entries")
        ordering = ["branch", "seq"]
        constraints = [models.UniqueConstraint(fields=["branch", "seq"], name="journals_received_unique_seq")]
        indexes = [models.Index(fields=["kind", "counterparty", "reference"], name="journals_received_match")]

    def __str__(self):
        return f"{self.branch} #{self.seq} {self.kind} {self.reference}"


class ReceivedHead(models.Model):
    """The centre's view of a branch's chain: the highest number stored in order and its hash."""

    branch = models.CharField(max_length=16, primary_key=True)
    last_seq = models.BigIntegerField(default=0)
    head_hash = models.CharField(max_length=64, default=GENESIS)


class ReceivedCheckpoint(models.Model):
    """A branch's signed daily checkpoint as the centre received it, with the signature's verdict."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    branch = models.CharField(_("branch"), max_length=16)
    date = models.DateField(_("date"))
    body = models.JSONField(_("body"))
    key_id = models.CharField(_("key id"), max_length=100)
    signature = models.CharField(_("signature"), max_length=200)
    signature_ok = models.BooleanField(_("signature verified"), default=False)
    received_at = models.DateTimeField(_("received"), default=now)

    class Meta:
        verbose_name = _("received checkpoint")
        verbose_name_plural = _("received checkpoints")
        ordering = ["branch", "-date"]
        constraints = [models.UniqueConstraint(fields=["branch", "date"], name="journals_rcheckpoint_unique")]

    def __str__(self):
        return f"{self.branch} {self.date}"


class Mismatch(models.Model):
    """A reconciliation finding: work for an operator. Found by the centre (reported_by = its code) and kept
    there; the branches concerned get a copy (the same key, reported_by = the centre) for their operators."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        IN_PROGRESS = "in_progress", _("in progress")
        RESOLVED = "resolved", _("resolved")
        CLEARED = "cleared", _("cleared (no longer found)")

    class Code(models.TextChoices):
        MISSING_AT_OWNER = "missing_at_owner", _("taken for a branch, not applied there")
        MISSING_AT_TAKER = "missing_at_taker", _("applied, not taken by the branch named")
        AMOUNT_DIFFERS = "amount_differs", _("amounts or currencies differ")
        CHAIN_GAP = "chain_gap", _("numbers missing in a journal")
        HASH_MISMATCH = "hash_mismatch", _("an entry does not match its hash")
        CHAIN_BROKEN = "chain_broken", _("an entry does not link to the previous one")
        CONFLICTING_ENTRY = "conflicting_entry", _("a number sent twice with different content")
        CHECKPOINT_MISSING = "checkpoint_missing", _("no checkpoint for the day")
        CHECKPOINT_MISMATCH = "checkpoint_mismatch", _("the checkpoint disagrees with the journal")
        BAD_SIGNATURE = "bad_signature", _("the checkpoint's signature does not verify")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    node = models.CharField(_("node"), max_length=16, default=own_code, editable=False,
                            help_text=_("The node whose work item this is (the centre's, or a branch's copy)."))
    reported_by = models.CharField(_("reported by"), max_length=16, default=own_code)
    date = models.DateField(_("date"))
    code = models.CharField(_("problem"), max_length=24, choices=Code.choices)
    branch = models.CharField(_("branch"), max_length=16, help_text=_("The journal concerned."))
    counterparty = models.CharField(_("counterparty"), max_length=16, blank=True)
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", verbose_name=_("assignee"))
    resolution = models.TextField(_("resolution"), blank=True)
    found_at = models.DateTimeField(_("found"), default=now)
    last_found_at = models.DateTimeField(_("last found"), default=now)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        verbose_name = _("journal mismatch")
        verbose_name_plural = _("journal mismatches")
        ordering = ["-date", "branch", "code", "reference"]
        constraints = [models.UniqueConstraint(fields=["node", "reported_by", "date", "code", "branch", "counterparty",
                                                       "reference"], name="journals_mismatch_unique")]
        permissions = [("reconcile", "Can run the reconciliation of payment journals")]

    def __str__(self):
        return f"{self.date} {self.code} {self.branch}{'/' + self.counterparty if self.counterparty else ''} {self.reference}"

