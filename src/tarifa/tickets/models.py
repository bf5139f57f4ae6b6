"""Tickets: typed work items that move through a configurable flow of steps.

A `TicketType` has `Step`s (its flow), the `Transition`s allowed between them (forward,
or backward with a required resolution), per step the data to collect (`StepField`),
who works it (`Step.roles`, `Step.branch`: the step's queue), its SLA and its
`StepHandler`s (pre: may veto entering the step; post: act when the ticket enters it).
A `Ticket` sits at one step; every move, failure and escalation is a `FlowEntry`.
Writes go through services.py; the models hold no rules.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7
from tarifa.kernel.models import Archivable, BusinessRecord

code_validator = RegexValidator(r"^[a-z0-9][a-z0-9_-]*$", _("Lower-case letters, digits, dash and underscore."))


class TicketType(BusinessRecord, Archivable):
    code = models.CharField(_("code"), max_length=40, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    customer_visible = models.BooleanField(_("customers may open it"), default=False,
                                           help_text=_("Offered to customers in the self-care portal."))

    class Meta:
        verbose_name = _("ticket type")
        verbose_name_plural = _("ticket types")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def first_step(self):
        return self.steps.filter(archived_at__isnull=True).order_by("order", "code").first()


class Step(BusinessRecord, Archivable):
    ticket_type = models.ForeignKey(TicketType, on_delete=models.PROTECT, related_name="steps",
                                    verbose_name=_("ticket type"))
    code = models.CharField(_("code"), max_length=40, validators=[code_validator])
    name = models.CharField(_("name"), max_length=100)
    order = models.PositiveIntegerField(_("order"), default=10, help_text=_("The first step opens new tickets."))
    final = models.BooleanField(_("final"), default=False, help_text=_("Entering it closes the ticket."))
    automatic = models.BooleanField(_("automatic"), default=False,
                                    help_text=_("When its post-handlers succeed the ticket moves on by itself "
                                                "along the step's first forward transition."))
    roles = models.ManyToManyField("identity.Role", blank=True, related_name="ticket_steps",
                                   verbose_name=_("queue roles"),
                                   help_text=_("Who sees and moves tickets at this step; none: every ticket user."))
    branch = models.CharField(_("queue branch"), max_length=16, blank=True,
                              help_text=_("Only staff of this branch work the step; empty: any branch."))
    sla_minutes = models.PositiveIntegerField(_("SLA (minutes)"), null=True, blank=True,
                                              help_text=_("Time allowed at this step; empty: no limit."))
    escalate_to_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+", verbose_name=_("escalate to user"),
                                         help_text=_("Overdue tickets are reassigned to this user."))
    escalate_to_role = models.ForeignKey("identity.Role", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+", verbose_name=_("escalate to role"),
                                         help_text=_("Overdue tickets are announced to this role's members."))
    notify_on_escalation = models.BooleanField(_("notify on escalation"), default=True)

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ["ticket_type__name", "order", "code"]
        constraints = [models.UniqueConstraint(fields=["ticket_type", "code"], name="tickets_step_code_unique")]

    def __str__(self):
        return f"{self.ticket_type.code}: {self.name}"


class StepField(BusinessRecord):
    """A piece of data collected when a ticket enters the step (a field of the move form)."""

    class Kind(models.TextChoices):
        TEXT = "text", _("Text")
        NUMBER = "number", _("Number")
        DATE = "date", _("Date")
        CHOICE = "choice", _("Choice")
        SERIAL = "serial", _("Serial number")

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="fields", verbose_name=_("step"))
    name = models.CharField(_("name"), max_length=40, validators=[code_validator])
    label = models.CharField(_("label"), max_length=100)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.TEXT)
    required = models.BooleanField(_("required"), default=False)
    choices = models.CharField(_("choices"), max_length=500, blank=True,
                               help_text=_("For a choice: the values, separated by commas."))
    order = models.PositiveIntegerField(_("order"), default=10)

    class Meta:
        verbose_name = _("step field")
        verbose_name_plural = _("step fields")
        ordering = ["step", "order", "name"]
        constraints = [models.UniqueConstraint(fields=["step", "name"], name="tickets_field_name_unique")]

    def __str__(self):
        return f"{self.step.code}.{self.name}"

    def choice_list(self) -> list[str]:
        return [c.strip() for c in self.choices.split(",") if c.strip()]


class Transition(BusinessRecord):
    class Direction(models.TextChoices):
        FORWARD = "forward", _("Forward")
        BACKWARD = "backward", _("Backward")

    ticket_type = models.ForeignKey(TicketType, on_delete=models.CASCADE, related_name="transitions",
                                    verbose_name=_("ticket type"))
    from_step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="transitions_out",
                                  verbose_name=_("from step"))
    to_step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="transitions_in",
                                verbose_name=_("to step"))
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices, default=Direction.FORWARD)
    requires_resolution = models.BooleanField(_("requires a resolution"), default=False,
                                              help_text=_("Backward moves always do."))
    label = models.CharField(_("button label"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("transition")
        verbose_name_plural = _("transitions")
        ordering = ["ticket_type", "from_step__order", "direction", "to_step__order"]
        constraints = [models.UniqueConstraint(fields=["from_step", "to_step"], name="tickets_transition_unique")]

    def __str__(self):
        return f"{self.from_step.code} → {self.to_step.code}"

    @property
    def needs_resolution(self) -> bool:
        return self.requires_resolution or self.direction == self.Direction.BACKWARD


class StepHandler(BusinessRecord):
    """Automation on entering a step: `pre` verifies (may veto), `post` acts (see handlers.py)."""

    class Phase(models.TextChoices):
        PRE = "pre", _("Before entering (may veto)")
        POST = "post", _("After entering")

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="handlers", verbose_name=_("step"))
    phase = models.CharField(_("phase"), max_length=4, choices=Phase.choices, default=Phase.POST)
    kind = models.CharField(_("kind"), max_length=40)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    order = models.PositiveIntegerField(_("order"), default=10)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("step handler")
        verbose_name_plural = _("step handlers")
        ordering = ["step", "phase", "order"]

    def __str__(self):
        return f"{self.step.code}: {self.phase} {self.kind}"


class Ticket(BusinessRecord):
    class Priority(models.TextChoices):
        LOW = "low", _("Low")
        NORMAL = "normal", _("Normal")
        HIGH = "high", _("High")
        URGENT = "urgent", _("Urgent")

    number = models.CharField(_("number"), max_length=32, unique=True, editable=False)
    ticket_type = models.ForeignKey(TicketType, on_delete=models.PROTECT, related_name="tickets",
                                    verbose_name=_("type"))
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    customer = models.ForeignKey("crm.Customer", on_delete=models.PROTECT, related_name="tickets",
                                 verbose_name=_("customer"))
    billing_account = models.ForeignKey("ledger.BillingAccount", on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="tickets", verbose_name=_("billing account"))
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="tickets", verbose_name=_("subscription"))
    requested_tariff = models.ForeignKey("catalog.Tariff", on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="+", verbose_name=_("requested tariff"))
    parameters = models.JSONField(_("parameters"), default=dict, blank=True,
                                  help_text=_("Tariff parameters and identifiers requested (login, …)."))
    step = models.ForeignKey(Step, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("step"),
                             editable=False)
    step_entered_at = models.DateTimeField(_("at step since"), default=now, editable=False)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="assigned_tickets", verbose_name=_("assignee"))
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    due_at = models.DateTimeField(_("due"), null=True, blank=True, editable=False, db_index=True)
    escalated_at = models.DateTimeField(_("escalated"), null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True, editable=False)
    watchers = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="watched_tickets",
                                      verbose_name=_("watchers"))
    data = models.JSONField(_("data collected"), default=dict, blank=True, editable=False)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
                               verbose_name=_("parent ticket"), editable=False)
    last_error = models.TextField(_("last failure"), blank=True, editable=False)
    opened_by = models.CharField(_("opened by"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["step", "due_at"], name="tickets_step_due")]
        permissions = [
            ("advance_ticket", _("Can move tickets between steps")),
            ("all_queues", _("Can see and move tickets at every step")),
        ]

    def __str__(self):
        return f"{self.number} {self.title}"

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def is_overdue(self) -> bool:
        return self.due_at is not None and self.closed_at is None and self.due_at < now()


class FlowEntry(models.Model):
    """One thing that happened in a ticket's flow (append-only)."""

    class Kind(models.TextChoices):
        OPENED = "opened", _("Opened")
        MOVED = "moved", _("Moved")
        FAILED = "failed", _("Failed")
        VETOED = "vetoed", _("Vetoed")
        ESCALATED = "escalated", _("Escalated")
        ASSIGNED = "assigned", _("Assigned")

    id = models.UUIDField(primary_key=True, default=uuid7,
                          editable=False)
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="flow", verbose_name=_("ticket"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    at = models.DateTimeField(_("at"), default=now)
    actor = models.CharField(_("by"), max_length=150, blank=True)
    from_step = models.ForeignKey(Step, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                  verbose_name=_("from"))
    to_step = models.ForeignKey(Step, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
                                verbose_name=_("to"))
    resolution = models.TextField(_("resolution"), blank=True)
    data = models.JSONField(_("data entered"), default=dict, blank=True)
    results = models.JSONField(_("handler results"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)
    seconds_at_step = models.PositiveBigIntegerField(_("time at the step (s)"), null=True, blank=True)

    class Meta:
        verbose_name = _("flow entry")
        verbose_name_plural = _("flow history")
        ordering = ["ticket", "at"]
        default_permissions = ()

    def __str__(self):
        return f"{self.get_kind_display()} {self.from_step.code if self.from_step else ''}→" \
               f"{self.to_step.code if self.to_step else ''}"


class Comment(BusinessRecord):
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="comments", verbose_name=_("ticket"))
    text = models.TextField(_("text"))
    internal = models.BooleanField(_("internal"), default=True,
                                   help_text=_("Internal comments are never shown to the customer."))
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                               related_name="+", editable=False, verbose_name=_("author"))
    author_label = models.CharField(_("author"), max_length=150, blank=True, editable=False)

    class Meta:
        verbose_name = _("ticket comment")
        verbose_name_plural = _("ticket comments")
        ordering = ["created_at"]

    def __str__(self):
        return self.text[:60]


def attachment_path(instance, filename):
    return f"tickets/attachments/{instance.created_at:%Y/%m}/{instance.id}"


class TicketAttachment(BusinessRecord):
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="attachments",
                               verbose_name=_("ticket"))
    file = models.FileField(_("file"), upload_to=attachment_path, max_length=255, editable=False)
    filename = models.CharField(_("file name"), max_length=255, editable=False)
    content_type = models.CharField(_("content type"), max_length=100, editable=False)
    size = models.PositiveBigIntegerField(_("size (bytes)"), editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    description = models.CharField(_("description"), max_length=200, blank=True)
    uploaded_by = models.CharField(_("uploaded by"), max_length=150, blank=True, editable=False)
    customer_visible = models.BooleanField(_("visible to the customer"), default=False)

    class Meta:
        verbose_name = _("ticket attachment")
        verbose_name_plural = _("ticket attachments")
        ordering = ["-created_at"]

    def __str__(self):
        return self.filename
