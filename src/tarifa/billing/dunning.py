"""Dunning (collections): a ladder of steps as data, applied to accounts with overdue invoices.

An account's policy is its own (`DunningAssignment`), else the default policy for its
customer's kind, else the default for any kind. A step *holds* while the account has at
least `min_unpaid_invoices` overdue invoices, owing at least `min_amount_overdue`, the
oldest at least `min_days_overdue` days past due.

`evaluate_account()` (the daily job for every account concerned; at once after a payment):
1. clears the open steps that no longer hold: a suspension for cause `dunning` is lifted
   (through subscriptions' `resume`, so service returns only when no other cause is open);
   a termination or a late fee stays. A prepaid account that cannot pay the reconnection
   fee keeps the step open (nothing of it is cleared) until a later evaluation finds the
   money, e.g. after its next payment;
2. applies the *next* step that holds and is not open — one per evaluation, and not before
   `reevaluate_days` after the previous one: notify (event `billing.dunning_notice` for the
   notifications), suspend with cause `dunning`, terminate, or add a late fee to the next
   invoice.
Dunning never edits subscriptions itself: it writes its `DunningAction` (the blocking state)
and calls subscriptions' services. Every step taken or cleared is in the account's history.
"""

import datetime as dt
from decimal import Decimal

from django.db import connection, transaction

from tarifa.audit import services as recorded
from tarifa.kernel import events
from tarifa.kernel.clock import now, today
from tarifa.ledger import services as ledger
from tarifa.ledger.errors import InsufficientFunds
from tarifa.ledger.models import BillingAccount

from .models import DunningAction, DunningAssignment, DunningPolicy, DunningStep

ZERO = Decimal(0)


def policy_for(account: BillingAccount) -> DunningPolicy | None:
    own = DunningAssignment.objects.select_related("policy").filter(billing_account=account).first()
    if own is not None and own.policy.archived_at is None:
        return own.policy
    defaults = DunningPolicy.objects.filter(is_default=True, archived_at__isnull=True)
    return (defaults.filter(customer_kind=account.customer.kind).first() or defaults.filter(customer_kind="").first())


def metrics(account: BillingAccount, as_of: dt.date) -> dict:
    """Overdue invoices of the account on `as_of`: count, amount, days past the oldest due date."""
    with connection.cursor() as cursor:
        cursor.execute("""SELECT count(*), coalesce(sum(total - paid_amount - credited_amount), 0), min(due_date)
                          FROM billing_invoice WHERE billing_account_id = %s AND kind = 'invoice'
                            AND state IN ('issued', 'partially_paid', 'overdue')
                            AND total - paid_amount - credited_amount > 0 AND due_date < %s""", [account.pk, as_of])
        count, amount, oldest = cursor.fetchone()
    return {"unpaid_invoices": count, "amount_overdue": amount, "days_overdue": (as_of - oldest).days if oldest else 0}


def holds(step: DunningStep, m: dict) -> bool:
    return (m["unpaid_invoices"] > 0 and m["unpaid_invoices"] >= step.min_unpaid_invoices
            and m["amount_overdue"] >= step.min_amount_overdue and m["days_overdue"] >= step.min_days_overdue)


def _live_subscriptions(account):
    from tarifa.subscriptions.models import Subscription

    return list(Subscription.objects.filter(billing_account=account, status__in=["active", "suspended"]))


def _clear(action: DunningAction, account, *, actor) -> bool:
    """Clear `action`; False (and nothing written) when a prepaid account cannot pay a reconnection fee."""
    try:
        with transaction.atomic():
            _clear_now(action, account, actor=actor)
    except InsufficientFunds:
        action.cleared_at = None
        return False
    return True


def _clear_now(action: DunningAction, account, *, actor) -> None:
    from tarifa.subscriptions import services as subs
    from tarifa.subscriptions.models import Suspension

    action.cleared_at = now()
    action.save(update_fields=["cleared_at"])
    if action.action == DunningStep.Action.SUSPEND:
        open_on = Suspension.objects.filter(subscription__billing_account=account, cause="dunning",
                                            ended_at__isnull=True).select_related("subscription")
        for susp in open_on:
            subs.resume(susp.subscription, actor=actor, cause="dunning", reason="dunning step cleared by payment")
    recorded.record(account, actor=actor, action="dunning_cleared",
                    changes={"step": [action.step.name, None]}, message=f"{action.step.policy.code}: {action.step.name}")


def _apply(step: DunningStep, account, m: dict, *, actor, as_of) -> DunningAction:
    from tarifa.subscriptions import services as subs

    detail = {}
    if step.action == DunningStep.Action.SUSPEND:
        done = []
        for sub in _live_subscriptions(account):
            if not sub.suspensions.filter(cause="dunning", ended_at__isnull=True).exists():
                subs.suspend(sub, actor=actor, cause="dunning", reason=f"dunning: {step.name}")
                done.append(sub.number)
        detail["suspended"] = done
    elif step.action == DunningStep.Action.TERMINATE:
        done = []
        for sub in _live_subscriptions(account):
            subs.terminate(sub, actor=actor, reason=f"dunning: {step.name}")
            done.append(sub.number)
        detail["terminated"] = done
    elif step.action == DunningStep.Action.LATE_FEE and step.late_fee > 0:
        from .services import add_pending_item

        item = add_pending_item(actor=actor, billing_account=account, kind="one_time_fee",
                                description=f"Late fee ({step.name})", amount=step.late_fee, day=as_of)
        detail["late_fee_item"] = str(item.pk)
    action = DunningAction.objects.create(
        billing_account=account, step=step, action=step.action, days_overdue=m["days_overdue"],
        amount_overdue=m["amount_overdue"], unpaid_invoices=m["unpaid_invoices"], detail=detail,
        actor=recorded.actor_label(actor)[:150])
    payload = {"billing_account": str(account.pk), "customer": str(account.customer_id), "step": step.name,
               "action": step.action, "template": step.template, "days_overdue": m["days_overdue"],
               "amount_overdue": f"{m['amount_overdue']:f}", "unpaid_invoices": m["unpaid_invoices"],
               "currency": account.currency}
    events.emit("billing.dunning_notice" if step.action == DunningStep.Action.NOTIFY else "billing.dunning_step",
                obj=account, payload=payload)
    recorded.record(account, actor=actor, action="dunning_step", changes={"step": [None, step.name]},
                    message=f"{step.policy.code} #{step.position} {step.name}: {step.get_action_display()}"
                            f" ({m['days_overdue']} days, {m['amount_overdue']:f} {account.currency} overdue)")
    return action


@transaction.atomic
def evaluate_account(account: BillingAccount, *, actor="system", as_of: dt.date | None = None) -> dict:
    """Clear the steps a payment satisfied, then apply the next step that holds. Takes the account lock.

    Idempotent: evaluating twice on the same day with the same balances changes nothing.
    """
    as_of = as_of or today()
    ledger.lock_accounts(account)
    account = BillingAccount.objects.select_related("customer").get(pk=account.pk)
    m = metrics(account, as_of)
    open_actions = list(DunningAction.objects.filter(billing_account=account, cleared_at__isnull=True)
                        .select_related("step", "step__policy").order_by("-step__position"))
    cleared = 0
    for action in open_actions:
        if not holds(action.step, m) and _clear(action, account, actor=actor):
            cleared += 1
    policy = policy_for(account)
    applied = None
    if policy is not None and m["unpaid_invoices"] > 0 and account.is_active:
        taken = {a.step_id for a in DunningAction.objects.filter(billing_account=account, cleared_at__isnull=True)}
        last = (DunningAction.objects.filter(billing_account=account, cleared_at__isnull=True)
                .order_by("-taken_at").first())
        wait_over = last is None or (as_of - last.taken_at.date()).days >= policy.reevaluate_days
        if wait_over:
            for step in policy.steps.order_by("position"):
                if step.pk not in taken and holds(step, m):
                    applied = _apply(step, account, m, actor=actor, as_of=as_of)
                    break
    return {"cleared": cleared, "applied": applied.step.name if applied else None, **m}


@transaction.atomic
def apply_step(*, actor, billing_account: BillingAccount, step: DunningStep) -> DunningAction:
    """The operator escalates by hand: take `step` now, whatever the conditions (recorded like any step)."""
    from .services import _require

    _require(actor, "billing.add_dunningpolicy")
    ledger.lock_accounts(billing_account)
    account = BillingAccount.objects.select_related("customer").get(pk=billing_account.pk)
    if DunningAction.objects.filter(billing_account=account, step=step, cleared_at__isnull=True).exists():
        from tarifa.kernel.errors import Conflict

        raise Conflict(f"Step {step.name} is already open on {account}.", code="step_open")
    return _apply(step, account, metrics(account, today()), actor=actor, as_of=today())


def run(*, as_of: dt.date | None = None, actor="system") -> dict:
    """The daily pass: every account with an overdue invoice or an open step, one transaction each."""
    as_of = as_of or today()
    with connection.cursor() as cursor:
        cursor.execute("""SELECT DISTINCT billing_account_id FROM billing_invoice
                          WHERE kind = 'invoice' AND state IN ('issued', 'partially_paid', 'overdue')
                            AND total - paid_amount - credited_amount > 0 AND due_date < %s
                          UNION SELECT billing_account_id FROM billing_dunningaction WHERE cleared_at IS NULL""",
                       [as_of])
        ids = [r[0] for r in cursor.fetchall()]
    counts = {"accounts": len(ids), "applied": 0, "cleared": 0, "errors": []}
    for account in BillingAccount.objects.filter(pk__in=ids).order_by("number"):
        try:
            result = evaluate_account(account, actor=actor, as_of=as_of)
        except Exception as exc:  # noqa: BLE001 — one account never stops the pass
            counts["errors"].append({"account": account.number, "error": str(exc)[:300]})
            continue
        counts["applied"] += 1 if result["applied"] else 0
        counts["cleared"] += result["cleared"]
    return counts


# --- policies (data) --------------------------------------------------------------------------------

@transaction.atomic
def create_policy(*, actor, **fields) -> DunningPolicy:
    from tarifa.kernel.errors import ValidationFailed

    if fields.get("is_default") and DunningPolicy.objects.filter(
            is_default=True, customer_kind=fields.get("customer_kind", ""), archived_at__isnull=True).exists():
        raise ValidationFailed("There is a default policy for this customer kind already.", code="duplicate_default",
                               fields={"is_default": ["Another policy is the default."]})
    return recorded.create(DunningPolicy, actor=actor, **fields)


@transaction.atomic
def update_policy(policy, *, actor, **changes) -> DunningPolicy:
    changes.pop("code", None)
    return recorded.update(policy, actor=actor, **changes)


@transaction.atomic
def archive_policy(policy, *, actor, reason="") -> DunningPolicy:
    return recorded.archive(policy, actor=actor, reason=reason)


@transaction.atomic
def create_step(*, actor, **fields) -> DunningStep:
    from tarifa.kernel.errors import ValidationFailed

    if DunningStep.objects.filter(policy=fields.get("policy"), position=fields.get("position")).exists():
        raise ValidationFailed("The policy has a step at this position.", code="duplicate_position",
                               fields={"position": ["Taken."]})
    if fields.get("action") == DunningStep.Action.LATE_FEE and not Decimal(str(fields.get("late_fee") or 0)) > 0:
        raise ValidationFailed("A late-fee step needs a fee.", code="late_fee_required",
                               fields={"late_fee": ["Greater than zero."]})
    return recorded.create(DunningStep, actor=actor, **fields)


@transaction.atomic
def update_step(step, *, actor, **changes) -> DunningStep:
    return recorded.update(step, actor=actor, **changes)


@transaction.atomic
def assign_policy(*, actor, billing_account, policy) -> DunningAssignment:
    """The account's own policy, instead of its customer kind's default. Errors: policy_archived."""
    from .services import _require

    _require(actor, "billing.add_dunningassignment")
    if policy.archived_at is not None:
        from tarifa.kernel.errors import DomainError

        raise DomainError(f"Dunning policy {policy.code} is archived.", code="policy_archived", status=409,
                          fields={"policy": ["Archived."]})
    row, _ = DunningAssignment.objects.update_or_create(billing_account=billing_account, defaults={"policy": policy})
    recorded.record(billing_account, actor=actor, action="dunning_policy", changes={"policy": [None, policy.code]})
    return row
