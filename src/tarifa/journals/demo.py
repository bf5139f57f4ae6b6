"""Demo journal: the demo's payments as local entries, two payments taken here for branch B2's subscribers
(one of them applied there, as B2 would say), sealed; and one mismatch as the centre (CTR) would report it."""

import base64
import datetime as dt

from tarifa.kernel.clock import now
from tarifa.kernel.ids import uuid7

from . import chain, services
from .models import JournalEntry, Kind


def load(*, actor) -> dict:
    from tarifa.payments.models import Payment

    if JournalEntry.objects.filter(branch=services.selectors.own_code()).exists():
        return {"entries": 0}
    made = 0
    for payment in Payment.objects.filter(status=Payment.Status.APPLIED).order_by("received_at")[:20]:
        services.record_entry(kind=Kind.LOCAL, reference=payment.number, amount=payment.amount,
                              currency=payment.currency, payment=payment, occurred_at=payment.received_at)
        made += 1
    code = services.selectors.own_code()
    for n, amount in [(1, "25.00"), (2, "40.00")]:
        services.record_entry(kind=Kind.TAKEN_FOR, reference=f"{code}-FP-{n:04d}", amount=amount, currency="USD",
                              counterparty="B2", details={"subscriber": f"B2 demo subscriber {n}"})
        made += 1
    sealed = services.seal_all()
    services.receive_mismatch(sender="CTR", payload={
        "date": (now() - dt.timedelta(days=1)).date().isoformat(), "code": "missing_at_owner", "branch": "B2",
        "counterparty": code, "reference": f"{code}-FP-0002", "status": "open",
        "details": {"kind": "taken_for", "taken": "40.00 USD", "applied": None}})
    _centre_copy_sample()
    return {"entries": made, "sealed": sealed}


def _centre_copy_sample():
    """What the centre's screens show: a copy of branch B2's journal (two entries) and its checkpoint, stored
    through the centre's own service as if B2 had sent them (its signature is not one this node knows)."""
    from tarifa.federation import signatures

    prev, entries = chain.GENESIS, []
    at = now() - dt.timedelta(days=1)
    for seq, (kind, ref, amount, counterparty) in enumerate([("local", "B2-P-0001", "12.50", ""),
                                                             ("applied_from", "B2-FP-0001", "25.00", "B1")], 1):
        entry = {"id": str(uuid7()), "branch": "B2", "seq": seq, "kind": kind, "reference": ref, "amount": amount,
                 "currency": "USD", "counterparty": counterparty, "occurred_at": at.isoformat()}
        entry = {**chain.canonical(entry), "prev_hash": prev, "sealed_at": at.isoformat()}
        entry["hash"] = prev = chain.entry_hash(entry["prev_hash"], entry)
        entries.append(entry)
    services.store_batch(sender="B2", payload={"branch": "B2", "first_seq": 1, "last_seq": 2, "head_hash": prev,
                                               "entries": entries})
    body = {"branch": "B2", "date": at.date().isoformat(), "first_seq": 1, "last_seq": 2, "count": 2,
            "sums": {"USD": "37.500000"}, "head_hash": prev}
    key = signatures.generate_private_key()
    services.store_checkpoint(sender="B2", payload={"body": body, "key_id": "B2.demo",
                                                    "signature": base64.b64encode(key.sign(chain.dumps(body))).decode()})
