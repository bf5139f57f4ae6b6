"""Reads of payments that screens, the API and other apps use."""

from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from .models import CashDesk, CashHandover, CashierShift, Payment, Refund


def desk_restricted(user) -> bool:
    """A cashier — who works a desk and may not see every desk — sees only their desks' journal."""
    return (user is not None and user.is_authenticated and user.has_perm("payments.operate_cash_desk")
            and not user.has_perm("payments.view_all_desks"))


def visible_desk_ids(user) -> list:
    """The desks a restricted cashier sees: those assigned to them and that of their open shift."""
    ids = set(CashDesk.objects.filter(cashiers=user).values_list("pk", flat=True))
    ids |= set(CashierShift.objects.filter(cashier=user, status=CashierShift.Status.OPEN).values_list("desk_id", flat=True))
    return list(ids)


def restrict_to_desks(queryset: QuerySet, user, field: str = "desk") -> QuerySet:
    """`queryset` as `user` may see it: everything, or a cashier's own desks' records only."""
    if not desk_restricted(user):
        return queryset
    return queryset.filter(**{f"{field}__in": visible_desk_ids(user)})


def payments_for(user) -> QuerySet:
    qs = Payment.objects.select_related("billing_account", "gateway", "desk", "shift", "cashier")
    return restrict_to_desks(qs, user)


def shifts_for(user) -> QuerySet:
    return restrict_to_desks(CashierShift.objects.select_related("desk", "cashier"), user)


def handovers_for(user) -> QuerySet:
    qs = CashHandover.objects.select_related("from_desk", "to_desk", "handed_by", "received_by")
    if not desk_restricted(user):
        return qs
    ids = visible_desk_ids(user)
    return qs.filter(Q(from_desk__in=ids) | Q(to_desk__in=ids))


def desks_for(user) -> QuerySet:
    return restrict_to_desks(CashDesk.objects.select_related("ledger_account"), user, field="pk")


def refunds_for(user) -> QuerySet:
    qs = Refund.objects.select_related("payment", "billing_account", "desk")
    if not desk_restricted(user):
        return qs
    ids = visible_desk_ids(user)
    return qs.filter(Q(desk__in=ids) | Q(payment__desk__in=ids))


def shift_summary(shift: CashierShift) -> dict:
    """What a shift took: payment count and total, refunds paid in cash, hand-overs out."""
    payments = shift.payments.filter(status=Payment.Status.APPLIED).aggregate(n=Count("pk"), total=Sum("amount"))
    refunds = shift.refunds.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    handovers = shift.handovers.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    return {"payments": payments["n"], "taken": payments["total"] or Decimal(0), "refunded": refunds,
            "handed_over": handovers}


def account_payments(account) -> QuerySet:
    return Payment.objects.filter(billing_account=account).order_by("-created_at")
