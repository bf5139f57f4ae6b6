"""THE one place that says what a portal user may see: every portal page and API endpoint takes
its querysets from `Scope(user)`, and looks objects up by id only through `Scope.get`, which
answers 404 (never 403, never another customer's record) for anything outside the scope.

- Everything belongs to the user's customer.
- Roles (business customers): an administrator sees and does everything of the customer
  (and manages its portal users and departments); an accountant sees accounts, invoices,
  payments and pays, but does not change services; a technical contact sees and changes
  services (state, usage, tariff, pause) but sees no money documents.
- Departments: a user given departments sees only the lines (subscriptions) of those
  departments, with their usage and requests. Administrators always see every line.
"""

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Q
from django.http import Http404

from tarifa.aaa.models import FinishedSession, Session

from tarifa.billing.models import Invoice
from tarifa.inventory.models import Device, Location
from tarifa.ledger.models import BillingAccount
from tarifa.payments.models import Payment
from tarifa.rating.models import UsageRecord
from tarifa.subscriptions.models import Subscription

from .models import Department, PortalUser

Role = PortalUser.Role

RIGHTS = {
    Role.ADMINISTRATOR: {"money", "services", "help", "manage"},
    Role.ACCOUNTANT: {"money", "help"},
    Role.TECHNICAL: {"services", "help"},
}


class Scope:
    def __init__(self, user: PortalUser):
        self.user = user
        self.customer_id = user.customer_id

    # Rights -----------------------------------------------------------------------------------
    def can(self, right: str) -> bool:
        return right in RIGHTS.get(self.user.role, set())

    def require(self, right: str) -> None:
        """Pages and endpoints a role may not use answer 404, like another customer's records."""
        if not self.can(right):
            raise Http404("Not available for your role.")

    def department_ids(self) -> list | None:
        """The departments limiting this user's lines, or None (all lines)."""
        if self.user.role == Role.ADMINISTRATOR or self.user.pk is None or self.user.read_only:
            return None
        ids = list(Department.objects.filter(users=self.user, archived_at__isnull=True).values_list("pk", flat=True))
        return ids or None

    # Querysets --------------------------------------------------------------------------------
    def accounts(self):
        if not (self.can("money") or self.can("services")):
            return BillingAccount.objects.none()
        return BillingAccount.objects.filter(customer_id=self.customer_id).select_related("ledger_account")

    def invoices(self):
        if not self.can("money"):
            return Invoice.objects.none()
        return (Invoice.objects.filter(customer_id=self.customer_id, billing_account__customer_id=self.customer_id)
                .exclude(state=Invoice.State.DRAFT).select_related("billing_account"))

    def payments(self):
        if not self.can("money"):
            return Payment.objects.none()
        return Payment.objects.filter(billing_account__customer_id=self.customer_id).select_related("billing_account")

    def subscriptions(self):
        if not self.can("services") and not self.can("money"):
            return Subscription.objects.none()
        qs = (Subscription.objects.filter(billing_account__customer_id=self.customer_id)
              .select_related("tariff", "service", "billing_account"))
        departments = self.department_ids()
        if departments is not None:
            qs = qs.filter(portal_departments__in=departments).distinct()
        return qs

    def usage(self):
        if not self.can("services"):
            return UsageRecord.objects.none()
        return UsageRecord.objects.filter(status=UsageRecord.Status.RATED,
                                          subscription__in=self.subscriptions().values("pk"))

    def sessions(self):
        """Open network sessions (RADIUS) of the lines this user sees."""
        if not self.can("services"):
            return Session.objects.none()
        return Session.objects.filter(subscription__in=self.subscriptions().values("pk"))

    def finished_sessions(self):
        if not self.can("services"):
            return FinishedSession.objects.none()
        return FinishedSession.objects.filter(subscription__in=self.subscriptions().values("pk"))

    def devices(self):
        """Devices at the customer's premises; a user limited to departments sees those of their lines."""
        if not self.can("services"):
            return Device.objects.none()
        qs = (Device.objects.filter(location__kind=Location.Kind.CUSTOMER, location__customer_id=self.customer_id)
              .select_related("item"))
        if self.department_ids() is not None:
            lines = self.subscriptions()
            refs = [str(ref) for ref in lines.values_list("pk", flat=True)] + list(lines.values_list("number", flat=True))
            qs = qs.filter(Q(subscription_ref__in=refs) | Q(agreements__subscription__in=lines.values("pk"))).distinct()
        return qs

    def departments(self):
        return Department.objects.filter(customer_id=self.customer_id, archived_at__isnull=True)

    def portal_users(self):
        if not self.can("manage"):
            return PortalUser.objects.none()
        return PortalUser.objects.filter(customer_id=self.customer_id)

    def tickets(self):
        from . import helpdesk

        return helpdesk.tickets_for(self)

    # One object by id -------------------------------------------------------------------------
    KINDS = {
        "account": "accounts", "invoice": "invoices", "payment": "payments", "subscription": "subscriptions",
        "ticket": "tickets", "department": "departments", "portal_user": "portal_users",
        "session": "sessions", "device": "devices",
    }

    def queryset(self, kind: str):
        return getattr(self, self.KINDS[kind])()

    def get(self, kind: str, pk):
        """The object `pk` of `kind` if this user may see it; 404 otherwise (also for a malformed id)."""
        try:
            return self.queryset(kind).get(pk=pk)
        except (ObjectDoesNotExist, ValueError, ValidationError, TypeError) as exc:  # also a malformed id
            raise Http404(kind) from exc
