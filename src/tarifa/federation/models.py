"""Federation: the node registry, this node's signing keys, and the stream protocol's outbox and
inbox (docs/federation.md; FEDERATION.md piece 1)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord
from tarifa.kernel.secrets import EncryptedTextField


def own_code() -> str:
    return settings.TARIFA_NODE_CODE


class Node(BusinessRecord, Archivable):
    """A Tarifa installation this node talks to (or itself, as listed in the centre's registry)."""

    class Role(models.TextChoices):
        CENTRE = "centre", _("centre")
        BRANCH = "branch", _("branch")

    code = models.CharField(_("code"), max_length=16, unique=True,
                            help_text=_("The node's branch code, as in its TARIFA_NODE_CODE."))
    name = models.CharField(_("name"), max_length=200)
    role = models.CharField(_("role"), max_length=8, choices=Role.choices, default=Role.BRANCH)
    base_url = models.URLField(_("base URL"), max_length=300,
                               help_text=_("Where the node's web server answers, e.g. https://b1.example.net"))

    class Meta:
        verbose_name = _("node")
        verbose_name_plural = _("nodes")
        ordering = ["code"]
        permissions = [("resume_stream", "Can resume a stopped federation stream"),
                       ("add_nodekey", "Can register a node's public key"),
                       ("rotate_signingkey", "Can rotate this node's signing key")]

    def __str__(self):
        return f"{self.code} — {self.name}"


class NodeKey(models.Model):
    """A node's public Ed25519 key, valid from/until: two overlapping windows rotate a key."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="keys", verbose_name=_("node"))
    key_id = models.CharField(_("key id"), max_length=100, unique=True)
    public_key = models.CharField(_("public key"), max_length=100, help_text=_("Ed25519, base64 of 32 bytes."))
    valid_from = models.DateTimeField(_("valid from"), default=now)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=now, editable=False)

    class Meta:
        verbose_name = _("node key")
        verbose_name_plural = _("node keys")
        ordering = ["node", "valid_from"]

    def __str__(self):
        return self.key_id


class SigningKey(models.Model):
    """This node's own Ed25519 key pair; the private half encrypted at rest (kernel.secrets). The newest
    key whose `signs_from` has come signs; older ones stay listed (their public halves) for overlap."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    key_id = models.CharField(_("key id"), max_length=100, unique=True)
    private_key = EncryptedTextField(_("private key"))
    public_key = models.CharField(_("public key"), max_length=100)
    signs_from = models.DateTimeField(_("signs from"), default=now)
    created_at = models.DateTimeField(_("created"), default=now, editable=False)

    class Meta:
        verbose_name = _("signing key")
        verbose_name_plural = _("signing keys")
        ordering = ["-signs_from"]

    def __str__(self):
        return self.key_id


class OutboundStream(models.Model):
    """The sending side of a stream (this node → receiver, kind): sequence numbers given so far and
    acknowledged, and whether it is stopped (an alarm: see selectors.problems)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    sender = models.CharField(max_length=16, default=own_code)
    receiver = models.CharField(max_length=16)
    kind = models.CharField(max_length=40)
    last_seq = models.BigIntegerField(default=0)  # the highest stream_seq ever given out
    acked_seq = models.BigIntegerField(default=0)  # the receiver's next_expected - 1, as last heard
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "receiver", "kind"], name="federation_outstream_unique")]

    def __str__(self):
        return f"{self.sender}→{self.receiver}/{self.kind}"


class OutboundMessage(models.Model):
    """The outbox: written in the business transaction by services.send, sent by the relay."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)  # the message_id
    sender = models.CharField(max_length=16, default=own_code)
    receiver = models.CharField(max_length=16)
    kind = models.CharField(max_length=40)
    stream_seq = models.BigIntegerField(null=True, blank=True)  # given at first send, kept across retries
    type = models.CharField(max_length=60)
    schema_version = models.PositiveIntegerField(default=1)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=now)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)  # the receiver's answer

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "receiver", "kind", "stream_seq"],
                                               name="federation_outbox_seq_unique")]
        indexes = [models.Index(fields=["receiver", "status", "kind", "stream_seq"], name="federation_outbox_due")]

    def __str__(self):
        number = f"#{self.stream_seq}" if self.stream_seq else _("not numbered yet")
        return f"{self.sender}→{self.receiver}/{self.kind} {number} ({self.type}, {self.get_status_display()})"

    @property
    def message_id(self):
        return self.id

    def envelope(self) -> dict:
        return {"message_id": str(self.id), "sender": self.sender, "receiver": self.receiver, "kind": self.kind,
                "stream_seq": self.stream_seq, "type": self.type, "schema_version": self.schema_version,
                "payload": self.payload, "created_at": self.created_at.isoformat()}


class InboundStream(models.Model):
    """The receiving side of a stream: what comes next, and the last refused message if any."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    sender = models.CharField(max_length=16)
    receiver = models.CharField(max_length=16, default=own_code)
    kind = models.CharField(max_length=40)
    next_expected = models.BigIntegerField(default=1)
    refused_seq = models.BigIntegerField(null=True, blank=True)
    refused_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "receiver", "kind"], name="federation_instream_unique")]

    def __str__(self):
        return f"{self.sender}→{self.receiver}/{self.kind}"


class InboundMessage(models.Model):
    """The inbox: one row per applied message, written in the transaction that applied it."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    sender = models.CharField(max_length=16)
    receiver = models.CharField(max_length=16, default=own_code)
    kind = models.CharField(max_length=40)
    stream_seq = models.BigIntegerField()
    message_id = models.UUIDField(db_index=True)
    type = models.CharField(max_length=60)
    schema_version = models.PositiveIntegerField(default=1)
    payload = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)  # the sender's
    applied_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "receiver", "kind", "stream_seq"],
                                               name="federation_inbox_seq_unique")]
