"""The write path of payment journals (docs/federation.md, "Payment journals and reconciliation").

Branch side: `record_entry` (called by payments' domain events for local payments, by interbranch for
foreign ones), `seal` (the sealer job), `make_checkpoint` (the daily job), `ship` (to the centre).
Centre side: `store_batch` / `store_checkpoint` (federation message handlers), `reconcile`.
Both: the mismatch work items (`assign_mismatch`, `resolve_mismatch`, `receive_mismatch`)."""

import base64
import datetime as dt
import logging
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Min, Sum

from tarifa.audit import services as recorded
from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, DomainError, PermissionDenied, ValidationFailed
from tarifa.kernel.money import CURRENCIES, format_amount

from . import chain, selectors
from .models import (
    FOREIGN_KINDS,
    GENESIS,
    NEGATIVE_KINDS,
    Checkpoint,
    JournalEntry,
    JournalHead,
    Kind,
    Mismatch,
    ReceivedCheckpoint,
    ReceivedEntry,
    ReceivedHead,
    SealedBatch,
)

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000  # entries sealed (and shipped) per batch
MESSAGE_KIND = "journal"  # the federation stream branch → centre
MISMATCH_KIND = "journal-mismatch"  # the stream centre → branch


class EntryConflict(Conflict):
    code = "journal_entry_conflict"


class NotCentre(DomainError):
    code = "not_centre"
    status = 409


def _require(actor, perm):
    if hasattr(actor, "has_perm") and not actor.has_perm(perm):
        raise PermissionDenied(f"You need the permission {perm}.", code="permission_denied")


# --- recording (branch) ---

def _amount(value) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationFailed(f"Not an amount: {value!r}.", fields={"amount": ["Not a number."]}) from None
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed("A journal amount is positive (reversal and refund kinds are stored negative).",
                               fields={"amount": ["Positive."]})
    if amount != amount.quantize(chain.QUANTUM):
        raise ValidationFailed("At most 6 decimal places.", fields={"amount": ["At most 6 decimal places."]})
    return amount


@transaction.atomic
def record_entry(*, kind, reference, amount, currency, counterparty=None, payment=None, occurred_at=None,
                 details=None) -> JournalEntry:
    """Write one entry of this branch's payment journal; idempotent on (kind, reference).

    Who calls it, in which transaction:
    - `local`, `local_reversal`, `local_refund`: this app's handlers of payments' domain events
      (`payments.payment_received` / `payment_reversed` / `payment_refunded`), in the event's job,
      after the payment committed. A payment that already has an entry of another kind (an
      `applied_from` written with `payment=`) gets no `local` entry.
    - `taken_for` (and `taken_for_reversal`): interbranch, at branch B, *inside* the transaction that
      books the cash and "due to A" and sends the message to A; `counterparty` = A, `reference` = B's
      receipt number.
    - `applied_from` (and `applied_from_reversal`): interbranch, at branch A, inside the handler that
      applies B's message (the inbox row's transaction); `counterparty` = B, `reference` = B's receipt
      number (the same as B's `taken_for`: reconciliation matches on it), `payment=` the local payment
      row if one is made.

    `amount` is positive; kinds ending in _reversal/_refund are stored negative. The same (kind,
    reference) again with the same amount, currency and counterparty returns the first entry
    (`.replayed = True`); with another one it is refused (409 journal_entry_conflict). The entry is
    sealed (numbered, hashed) after commit by the sealer job; nothing here waits for it.
    """
    try:
        kind = Kind(kind)
    except ValueError:
        raise ValidationFailed(f"Unknown journal entry kind {kind!r}.", fields={"kind": ["Unknown."]}) from None
    reference = str(reference or "").strip()
    if not reference or len(reference) > 100:
        raise ValidationFailed("A reference (1–100 characters) is required.", fields={"reference": ["Required."]})
    value = _amount(amount)
    if kind in NEGATIVE_KINDS:
        value = -value
    if currency not in CURRENCIES:
        raise ValidationFailed(f"Unknown currency {currency!r}.", fields={"currency": ["Unknown."]})
    counterparty = str(counterparty or "").strip().upper()
    if kind in FOREIGN_KINDS:
        if not counterparty:
            raise ValidationFailed(f"A {kind} entry names the other branch.", fields={"counterparty": ["Required."]})
        if counterparty == selectors.own_code():
            raise ValidationFailed("The counterparty is another branch.", fields={"counterparty": ["This branch."]})
    elif counterparty:
        raise ValidationFailed("A local entry names no other branch.", fields={"counterparty": ["Not for local."]})
    branch = selectors.own_code()
    existing = JournalEntry.objects.filter(branch=branch, kind=kind, reference=reference).first()
    if existing is None:
        entry = JournalEntry(branch=branch, kind=kind, reference=reference, amount=value, currency=currency,
                             counterparty=counterparty, payment=payment, occurred_at=occurred_at or now(),
                             details=details or {})
        try:
            with transaction.atomic():
                entry.save(force_insert=True)
        except IntegrityError:
            existing = JournalEntry.objects.filter(branch=branch, kind=kind, reference=reference).first()
            if existing is None:
                raise
        else:
            entry.replayed = False
            transaction.on_commit(_defer_seal)
            return entry
    if (existing.amount, existing.currency, existing.counterparty) != (value, currency, counterparty):
        raise EntryConflict(f"Journal entry {kind} {reference} exists with {existing.amount} {existing.currency}"
                            f"{' / ' + existing.counterparty if existing.counterparty else ''}.")
    existing.replayed = True
    return existing


def _defer_seal():
    """After commit: queue the sealer (at most one waiting; the per-minute sweep catches a lost one)."""
    from procrastinate.exceptions import AlreadyEnqueued

    from .tasks import seal_job

    try:
        seal_job.configure(lock="journals.seal", queueing_lock="journals.seal").defer()
    except AlreadyEnqueued:
        pass


# --- sealing (branch) ---

def _head_locked(branch) -> JournalHead:
    JournalHead.objects.get_or_create(branch=branch)
    return JournalHead.objects.select_for_update().get(branch=branch)


@transaction.atomic
def seal(*, limit: int = BATCH_LIMIT) -> int:
    """Number and chain the committed, unsealed entries of this branch (one batch of at most `limit`), under
    the head's row lock: numbers are gap-free because they are given only here, to committed rows, one
    sealer at a time. The batch is shipped to the centre in the same transaction. Returns how many."""
    branch = selectors.own_code()
    head = _head_locked(branch)
    entries = list(JournalEntry.objects.select_for_update().filter(branch=branch, seq__isnull=True)
                   .order_by("recorded_at", "id")[:limit])
    if not entries:
        return 0
    sealed_at = now()
    seq, prev = head.last_seq, head.head_hash
    for entry in entries:
        seq += 1
        entry.seq, entry.prev_hash, entry.sealed_at = seq, prev, sealed_at
        entry.hash = chain.entry_hash(prev, _entry_dict(entry))
        prev = entry.hash
    JournalEntry.objects.bulk_update(entries, ["seq", "prev_hash", "hash", "sealed_at"])
    SealedBatch.objects.create(branch=branch, first_seq=head.last_seq + 1, last_seq=seq, head_hash=prev,
                               sealed_at=sealed_at)
    head.last_seq, head.head_hash = seq, prev
    head.save(update_fields=["last_seq", "head_hash"])
    ship()
    return len(entries)


def seal_all() -> int:
    total = 0
    while count := seal():
        total += count
    return total


def _entry_dict(entry) -> dict:
    return {"id": entry.id if isinstance(entry, JournalEntry) else entry.entry_id, "branch": entry.branch,
            "seq": entry.seq, "kind": entry.kind, "reference": entry.reference, "amount": entry.amount,
            "currency": entry.currency, "counterparty": entry.counterparty, "occurred_at": entry.occurred_at,
            "prev_hash": entry.prev_hash, "hash": entry.hash}


def verify_own_chain() -> list[dict]:
    """This branch's journal against its own chain (a changed row is found here before the centre)."""
    entries = (JournalEntry.objects.filter(branch=selectors.own_code(), seq__isnull=False).order_by("seq")
               .iterator(chunk_size=5000))
    return chain.verify(_entry_dict(e) for e in entries)


# --- checkpoints (branch) ---

def _sign(body: dict) -> tuple[str, str]:
    from tarifa.federation import services as federation, signatures
    from tarifa.federation.models import SigningKey

    # This node's newest key (key ids start with the node's code; one database may hold several nodes' keys
    # in tests), made on first use by federation.
    key = (SigningKey.objects.filter(key_id__startswith=f"{selectors.own_code()}.", signs_from__lte=now())
           .order_by("-signs_from").first() or federation.own_signing_key())
    private = signatures.private_from_text(key.private_key)
    return key.key_id, base64.b64encode(private.sign(chain.dumps(body))).decode()


def _day_bounds(day: dt.date):
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


@transaction.atomic
def make_checkpoint(day: dt.date) -> Checkpoint:
    """This branch's signed checkpoint for `day` (UTC), once the day is over: the entries sealed that day
    (first_seq..last_seq, count, sums per currency) and the chain's head after them. Idempotent: made
    once, returned after. Taken under the head's lock, so no sealer is between its reads."""
    branch = selectors.own_code()
    if day >= now().astimezone(dt.UTC).date():
        raise ValidationFailed(f"{day} is not over yet (days are UTC).", code="day_not_over")
    existing = Checkpoint.objects.filter(branch=branch, date=day).first()
    if existing:
        return existing
    _head_locked(branch)
    start, end = _day_bounds(day)
    entries = JournalEntry.objects.filter(branch=branch, seq__isnull=False)
    day_rows = entries.filter(sealed_at__gte=start, sealed_at__lt=end)
    stats = day_rows.aggregate(first=Min("seq"), last=Max("seq"), count=Count("id"))
    last_seq = entries.filter(sealed_at__lt=end).aggregate(m=Max("seq"))["m"] or 0
    count = stats["count"]
    sums = {row["currency"]: chain.amount_text(row["total"])
            for row in day_rows.values("currency").annotate(total=Sum("amount")).order_by("currency")}
    head_hash = GENESIS if last_seq == 0 else entries.get(seq=last_seq).hash
    body = {"branch": branch, "date": day.isoformat(), "first_seq": last_seq - count + 1, "last_seq": last_seq,
            "count": count, "sums": sums, "head_hash": head_hash}
    key_id, signature = _sign(body)
    checkpoint = Checkpoint.objects.create(branch=branch, date=day, body=body, key_id=key_id, signature=signature)
    ship()
    return checkpoint


def make_due_checkpoints() -> list[Checkpoint]:
    """Checkpoints for every finished day since the last one (or since the first sealed entry)."""
    branch = selectors.own_code()
    last = Checkpoint.objects.filter(branch=branch).order_by("-date").first()
    if last:
        day = last.date + dt.timedelta(days=1)
    else:
        first = JournalEntry.objects.filter(branch=branch, sealed_at__isnull=False).order_by("seq").first()
        if first is None:
            return []
        day = first.sealed_at.astimezone(dt.UTC).date()
    today = now().astimezone(dt.UTC).date()
    made = []
    while day < today:
        made.append(make_checkpoint(day))
        day += dt.timedelta(days=1)
    return made


# --- shipping to the centre (branch) ---

@transaction.atomic
def ship() -> int:
    """Put the sealed batches and checkpoints not yet shipped into the outbox to the centre (stream kind
    `journal`), batches before checkpoints so a checkpoint arrives after the entries it covers. Nothing
    happens without a centre in the registry (standalone, or not registered yet): they go later."""
    from tarifa.federation import services as federation

    centre = selectors.centre_code() if selectors.enabled() else None
    if centre is None:
        return 0
    branch = selectors.own_code()
    sent = 0
    for batch in SealedBatch.objects.select_for_update().filter(branch=branch, shipped_at__isnull=True).order_by(
            "first_seq"):
        rows = JournalEntry.objects.filter(branch=branch, seq__gte=batch.first_seq, seq__lte=batch.last_seq
                                           ).order_by("seq")
        payload = {"branch": branch, "first_seq": batch.first_seq, "last_seq": batch.last_seq,
                   "head_hash": batch.head_hash,
                   "entries": [{**chain.canonical(_entry_dict(e)), "prev_hash": e.prev_hash, "hash": e.hash,
                                "sealed_at": e.sealed_at.isoformat()} for e in rows]}
        federation.send(receiver=centre, kind=MESSAGE_KIND, type="journals.batch", payload=payload)
        batch.shipped_at, batch.shipped_to = now(), centre
        batch.save(update_fields=["shipped_at", "shipped_to"])
        sent += 1
    for checkpoint in Checkpoint.objects.select_for_update().filter(branch=branch, shipped_at__isnull=True).order_by(
            "date"):
        federation.send(receiver=centre, kind=MESSAGE_KIND, type="journals.checkpoint",
                        payload={"body": checkpoint.body, "key_id": checkpoint.key_id,
                                 "signature": checkpoint.signature})
        checkpoint.shipped_at = now()
        checkpoint.save(update_fields=["shipped_at"])
        sent += 1
    return sent


# --- the centre's copies ---

def _received_head(branch) -> ReceivedHead:
    ReceivedHead.objects.get_or_create(branch=branch)
    return ReceivedHead.objects.select_for_update().get(branch=branch)


@transaction.atomic
def store_batch(*, sender: str, payload: dict) -> dict:
    """The centre stores a branch's sealed batch as sent (its copy of the journal). Continuity (numbers
    follow, hashes link and match) is checked here for the answer and again by every reconciliation; an
    entry number that comes again with other content is a `conflicting_entry` mismatch (the first is kept)."""
    if payload.get("branch") != sender:
        raise ValidationFailed("A branch sends only its own journal.", code="not_own_journal")
    head = _received_head(sender)
    problems, stored = [], 0
    for item in payload.get("entries", []):
        seq = int(item["seq"])
        old = ReceivedEntry.objects.filter(branch=sender, seq=seq).first()
        if old is not None:
            if old.hash != item["hash"]:
                problems.append({"code": "conflicting_entry", "seq": seq})
                kept = {**chain.canonical(_entry_dict(old)), "prev_hash": old.prev_hash, "hash": old.hash}
                _found(Mismatch.Code.CONFLICTING_ENTRY, day=now().astimezone(dt.UTC).date(), branch=sender,
                       reference=str(seq), details={"kept": kept, "received": item})
            continue
        ReceivedEntry.objects.create(
            branch=sender, seq=seq, entry_id=item["id"], kind=item["kind"], reference=item["reference"],
            amount=Decimal(item["amount"]), currency=item["currency"], counterparty=item.get("counterparty", ""),
            occurred_at=dt.datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00")),
            prev_hash=item["prev_hash"], hash=item["hash"],
            sealed_at=dt.datetime.fromisoformat(item["sealed_at"]) if item.get("sealed_at") else None)
        stored += 1
        if seq == head.last_seq + 1:
            if item["prev_hash"] != head.head_hash or chain.entry_hash(item["prev_hash"], item) != item["hash"]:
                problems.append({"code": "chain", "seq": seq})
            head.last_seq, head.head_hash = seq, item["hash"]
        else:
            problems.append({"code": "chain_gap", "seq": seq, "expected": head.last_seq + 1})
    head.save(update_fields=["last_seq", "head_hash"])
    return {"stored": stored, "last_seq": head.last_seq, "problems": problems}


def verify_checkpoint_signature(branch: str, key_id: str, signature: str, body: dict) -> bool:
    from tarifa.federation import selectors as federation

    node = federation.node_of_key(key_id)
    if node is None or node.code != branch:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    from cryptography.exceptions import InvalidSignature

    for key in federation.public_keys(key_id, now()):
        try:
            key.verify(raw, chain.dumps(body))
            return True
        except InvalidSignature:
            continue
    return False


@transaction.atomic
def store_checkpoint(*, sender: str, payload: dict) -> dict:
    body = payload.get("body") or {}
    if body.get("branch") != sender:
        raise ValidationFailed("A branch sends only its own checkpoints.", code="not_own_journal")
    day = dt.date.fromisoformat(body["date"])
    ok = verify_checkpoint_signature(sender, payload.get("key_id", ""), payload.get("signature", ""), body)
    old = ReceivedCheckpoint.objects.filter(branch=sender, date=day).first()
    if old is not None:
        if old.body != body:
            _found(Mismatch.Code.CHECKPOINT_MISMATCH, day=day, branch=sender,
                   details={"message": "a second, different checkpoint for the day", "kept": old.body,
                            "received": body})
        return {"stored": False, "signature_ok": old.signature_ok}
    ReceivedCheckpoint.objects.create(branch=sender, date=day, body=body, key_id=payload.get("key_id", ""),
                                      signature=payload.get("signature", ""), signature_ok=ok)
    return {"stored": True, "signature_ok": ok}


# --- reconciliation (centre) ---

def _found(code, *, day, branch, counterparty="", reference="", details=None, seen_at=None) -> Mismatch:
    """Upsert a finding of this node. A cleared one found again is open again; an operator's resolution
    stands (they decided about it)."""
    at = seen_at or now()
    item, created = Mismatch.objects.get_or_create(
        node=selectors.own_code(), reported_by=selectors.own_code(), date=day, code=code, branch=branch, counterparty=counterparty,
        reference=reference, defaults={"details": details or {}, "found_at": at, "last_found_at": at})
    if not created:
        item.details, item.last_found_at = details or {}, at
        fields = ["details", "last_found_at"]
        if item.status == Mismatch.Status.CLEARED:
            item.status, item.resolved_at = Mismatch.Status.OPEN, None
            fields += ["status", "resolved_at"]
            item._reopened = True
        item.save(update_fields=fields)
    item._created = created
    return item


def _branches() -> list[str]:
    from tarifa.federation.models import Node

    codes = set(Node.objects.filter(role=Node.Role.BRANCH, archived_at__isnull=True).values_list("code", flat=True))
    codes |= set(ReceivedHead.objects.values_list("branch", flat=True))
    return sorted(codes)


def _chain_findings(branch) -> list[dict]:
    rows = ReceivedEntry.objects.filter(branch=branch).order_by("seq").iterator(chunk_size=5000)
    return chain.verify(_entry_dict(r) for r in rows)


def _checkpoint_findings(branch, day) -> list[dict]:
    cp = ReceivedCheckpoint.objects.filter(branch=branch, date=day).first()
    if cp is None:
        # Expected once the branch's journal had begun by the end of the day (an entry sealed by then, or an
        # earlier checkpoint); a branch whose first entry was sealed later owes none for the day.
        _, end = _day_bounds(day)
        begun = (ReceivedEntry.objects.filter(branch=branch, sealed_at__lt=end).exists()
                 or ReceivedCheckpoint.objects.filter(branch=branch, date__lt=day).exists())
        if not begun:
            return []
        return [{"code": Mismatch.Code.CHECKPOINT_MISSING, "message": f"no checkpoint of {branch} for {day}"}]
    found = []
    if not (cp.signature_ok or verify_checkpoint_signature(branch, cp.key_id, cp.signature, cp.body)):
        found.append({"code": Mismatch.Code.BAD_SIGNATURE, "message": f"key {cp.key_id}"})
    body = cp.body
    first, last = int(body["first_seq"]), int(body["last_seq"])
    rows = ReceivedEntry.objects.filter(branch=branch, seq__gte=first, seq__lte=last)
    have = rows.count()
    sums = {r["currency"]: chain.amount_text(r["total"])
            for r in rows.values("currency").annotate(total=Sum("amount")).order_by("currency")}
    head = (GENESIS if last == 0 else
            ReceivedEntry.objects.filter(branch=branch, seq=last).values_list("hash", flat=True).first())
    problems = []
    if have != body["count"] or last - first + 1 != body["count"]:
        problems.append(f"count {body['count']}, the centre holds {have} of {first}..{last}")
    if sums != body["sums"]:
        problems.append(f"sums {body['sums']}, the centre's copy {sums}")
    if head != body["head_hash"]:
        problems.append(f"head {body['head_hash'][:12]}…, the centre's entry {last}: {(head or 'missing')[:12]}…")
    if problems:
        found.append({"code": Mismatch.Code.CHECKPOINT_MISMATCH, "message": "; ".join(problems)})
    return found


PAIRS_SQL = """
WITH taken AS (
    SELECT branch AS taker, counterparty AS owner, reference, currency, sum(amount) AS amount,
           min(occurred_at) AS first_at
    FROM journals_receivedentry WHERE kind IN ('taken_for', 'taken_for_reversal')
    GROUP BY 1, 2, 3, 4
), applied AS (
    SELECT counterparty AS taker, branch AS owner, reference, currency, sum(amount) AS amount,
           min(occurred_at) AS first_at
    FROM journals_receivedentry WHERE kind IN ('applied_from', 'applied_from_reversal')
    GROUP BY 1, 2, 3, 4
)
SELECT coalesce(t.taker, a.taker), coalesce(t.owner, a.owner), coalesce(t.reference, a.reference),
       t.amount, coalesce(t.currency, a.currency), a.amount
FROM taken t FULL OUTER JOIN applied a
  ON a.taker = t.taker AND a.owner = t.owner AND a.reference = t.reference AND a.currency = t.currency
WHERE (coalesce(t.first_at, a.first_at) AT TIME ZONE 'UTC')::date = %s
  AND coalesce(t.amount, 0) <> coalesce(a.amount, 0)
ORDER BY 1, 2, 3, 5
"""


def _pair_findings(day) -> list[dict]:
    """Per branch pair and receipt: what the taker says it took for the owner (taken_for, less its
    taken_for_reversal when the owner refused it) against what the owner says it applied from the taker
    (applied_from less applied_from_reversal), matched by the taker's receipt number and currency; dated by
    the first taking (or, when nothing was taken, the first applying). A taking reversed at the taker and
    never applied at the owner (a refused foreign payment) nets to nothing on both sides: no finding."""
    with connection.cursor() as cursor:
        cursor.execute(PAIRS_SQL, [day])
        rows = cursor.fetchall()
    found = []
    for taker, owner, reference, t_amount, currency, a_amount in rows:
        details = {"taken": None if t_amount is None else format_amount(t_amount, currency),
                   "applied": None if a_amount is None else format_amount(a_amount, currency)}
        if not a_amount:
            found.append({"code": Mismatch.Code.MISSING_AT_OWNER, "branch": owner, "counterparty": taker,
                          "reference": reference, "details": details})
        elif not t_amount:
            found.append({"code": Mismatch.Code.MISSING_AT_TAKER, "branch": taker, "counterparty": owner,
                          "reference": reference, "details": details})
        else:
            found.append({"code": Mismatch.Code.AMOUNT_DIFFERS, "branch": owner, "counterparty": taker,
                          "reference": reference, "details": details})
    return found


def reconcile(day: dt.date, *, actor="system", notify: bool = True) -> dict:
    """The centre's reconciliation of `day` (UTC): each branch's journal copy against its chain (1..N, every
    hash) and its checkpoint for the day, and every branch pair's foreign payments (taken_for against
    applied_from). Findings are upserted as Mismatch work items; open items of the day not found any more
    are cleared; new, reopened and cleared items are sent to the branches concerned. Returns the report
    (`ok` is False when anything was found)."""
    _require(actor, "journals.reconcile")
    if not selectors.is_centre():
        raise NotCentre("Only the centre reconciles journals (TARIFA_NODE_ROLE=centre).")
    at = now()
    findings, branches = [], {}
    for branch in _branches():
        head = ReceivedHead.objects.filter(branch=branch).first()
        chain_problems = _chain_findings(branch)
        for p in chain_problems:
            findings.append({"code": p["code"], "branch": branch, "counterparty": "", "reference": str(p["seq"]),
                             "details": {"message": p["message"]}})
        checkpoint_problems = _checkpoint_findings(branch, day) if day < at.astimezone(dt.UTC).date() else []
        for p in checkpoint_problems:
            findings.append({"code": p["code"], "branch": branch, "counterparty": "", "reference": "",
                             "details": {"message": p["message"]}})
        branches[branch] = {"entries": ReceivedEntry.objects.filter(branch=branch).count(),
                            "last_seq": head.last_seq if head else 0, "chain_ok": not chain_problems,
                            "checkpoint_ok": not checkpoint_problems}
    findings += _pair_findings(day)
    changed = []
    with transaction.atomic():
        seen = set()
        for f in findings:
            item = _found(f["code"], day=day, branch=f["branch"], counterparty=f["counterparty"],
                          reference=f["reference"], details=f["details"], seen_at=at)
            seen.add(item.pk)
            if item._created or getattr(item, "_reopened", False):
                changed.append(item)
        stale = (Mismatch.objects.select_for_update().filter(node=selectors.own_code(),
                                                             reported_by=selectors.own_code(), date=day,
                                                             status__in=[Mismatch.Status.OPEN,
                                                                         Mismatch.Status.IN_PROGRESS])
                 .exclude(pk__in=seen))
        for item in stale:
            item.status, item.resolved_at = Mismatch.Status.CLEARED, at
            item.resolution = (item.resolution + "\n" if item.resolution else "") + f"Not found at reconcile {at:%Y-%m-%d %H:%M:%S}."
            item.save(update_fields=["status", "resolved_at", "resolution"])
            changed.append(item)
        if notify and selectors.enabled():
            for item in changed:
                _notify(item)
        for item in changed:
            recorded.record(item, actor=actor, action="reconcile", message=f"{item.status} at reconcile of {day}")
    mismatches = [_as_dict(m) for m in Mismatch.objects.filter(node=selectors.own_code(),
                                                               reported_by=selectors.own_code(), date=day)
                  .exclude(status=Mismatch.Status.CLEARED).exclude(status=Mismatch.Status.RESOLVED)
                  .order_by("branch", "code", "counterparty", "reference")]
    return {"date": day.isoformat(), "ok": not findings, "found": len(findings), "mismatches": mismatches,
            "branches": branches}


def _as_dict(m: Mismatch) -> dict:
    return {"id": str(m.id), "date": m.date.isoformat(), "code": m.code, "branch": m.branch,
            "counterparty": m.counterparty, "reference": m.reference, "status": m.status, "details": m.details,
            "reported_by": m.reported_by, "assignee": m.assignee.get_username() if m.assignee_id else None,
            "resolution": m.resolution}


def _notify(item: Mismatch) -> None:
    """Tell the branches concerned (the journal's branch and the counterparty) about a finding's state."""
    from tarifa.federation import services as federation
    from tarifa.federation.models import Node

    payload = {"date": item.date.isoformat(), "code": item.code, "branch": item.branch,
               "counterparty": item.counterparty, "reference": item.reference, "status": item.status,
               "details": item.details}
    for code in sorted({item.branch, item.counterparty} - {""}):
        if Node.objects.filter(code=code, archived_at__isnull=True).exists():
            federation.send(receiver=code, kind=MISMATCH_KIND, type="journals.mismatch", payload=payload)


@transaction.atomic
def receive_mismatch(*, sender: str, payload: dict) -> dict:
    """A branch keeps the centre's finding as its own work item (reported_by = the centre); the centre's
    state (open / cleared) is followed; the branch's assignee and resolution are its own."""
    fields = dict(node=selectors.own_code(), reported_by=sender, date=dt.date.fromisoformat(payload["date"]), code=payload["code"],
                  branch=payload["branch"], counterparty=payload.get("counterparty", ""),
                  reference=payload.get("reference", ""))
    item = Mismatch.objects.select_for_update().filter(**fields).first()
    status = payload.get("status", Mismatch.Status.OPEN)
    if item is None:
        item = Mismatch.objects.create(**fields, details=payload.get("details") or {}, status=status,
                                       resolved_at=now() if status == Mismatch.Status.CLEARED else None)
    else:
        item.details, item.last_found_at = payload.get("details") or {}, now()
        if status == Mismatch.Status.CLEARED or item.status == Mismatch.Status.CLEARED:
            item.status = status
            item.resolved_at = now() if status == Mismatch.Status.CLEARED else None
        item.save(update_fields=["details", "last_found_at", "status", "resolved_at"])
    recorded.record(item, actor=f"node:{sender}", action="reported", message=status)
    return {"status": item.status}


# --- work items ---

def assign_mismatch(item: Mismatch, *, actor, assignee) -> Mismatch:
    _require(actor, "journals.change_mismatch")
    status = Mismatch.Status.IN_PROGRESS if item.status == Mismatch.Status.OPEN else item.status
    return recorded.update(item, actor=actor, action="assign", assignee=assignee, status=status)


def resolve_mismatch(item: Mismatch, *, actor, resolution: str) -> Mismatch:
    _require(actor, "journals.change_mismatch")
    resolution = str(resolution or "").strip()
    if not resolution:
        raise ValidationFailed("Say how it was resolved.", code="resolution_required",
                               fields={"resolution": ["Required."]})
    if item.status in (Mismatch.Status.RESOLVED, Mismatch.Status.CLEARED):
        raise Conflict(f"This mismatch is {item.get_status_display()} already.", code="already_resolved")
    return recorded.update(item, actor=actor, action="resolve", status=Mismatch.Status.RESOLVED,
                           resolution=resolution, resolved_at=now())
