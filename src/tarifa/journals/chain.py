"""The hash chain of a payment journal. Pure functions, no ORM (tested alone).

An entry's canonical form is the JSON object of the fields that say what happened — id, branch, seq,
kind, reference, amount (6 decimal places), currency, counterparty, occurred_at (UTC, microseconds) —
with sorted keys and no spaces. hash(entry n) = SHA-256(hash(entry n-1) ‖ "\\n" ‖ canonical(entry n)),
hex; entry 1 follows GENESIS (64 zeros). Changing any field of any entry, or leaving one out, changes
every later hash: the head of the chain in a signed checkpoint pins the whole journal up to it.
"""

import datetime as dt
import hashlib
import json
from decimal import Decimal

GENESIS = "0" * 64
QUANTUM = Decimal("0.000001")
FIELDS = ("id", "branch", "seq", "kind", "reference", "amount", "currency", "counterparty", "occurred_at")


def amount_text(value) -> str:
    return f"{Decimal(value).quantize(QUANTUM):f}"


def time_text(value) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: dict) -> dict:
    """The hashed fields of `entry` (a dict with at least FIELDS), normalised."""
    return {"id": str(entry["id"]), "branch": entry["branch"], "seq": int(entry["seq"]), "kind": str(entry["kind"]),
            "reference": entry["reference"], "amount": amount_text(entry["amount"]), "currency": entry["currency"],
            "counterparty": entry["counterparty"] or "", "occurred_at": time_text(entry["occurred_at"])}


def dumps(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, entry: dict) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + dumps(canonical(entry))).hexdigest()


def verify(entries, *, start_seq: int = 1, start_hash: str = GENESIS) -> list[dict]:
    """Check `entries` (dicts with FIELDS, prev_hash and hash, in seq order) as the chain from `start_seq`
    after `start_hash`. Returns the problems: chain_gap (numbers missing), hash_mismatch (an entry's content
    is not what its hash says: changed), chain_broken (prev_hash is not the previous entry's hash)."""
    problems = []
    expected_seq, prev = start_seq, start_hash
    for entry in entries:
        seq = int(entry["seq"])
        if seq != expected_seq:
            problems.append({"code": "chain_gap", "seq": expected_seq,
                             "message": f"numbers {expected_seq}..{seq - 1} missing"})
        if entry["prev_hash"] != prev:
            problems.append({"code": "chain_broken", "seq": seq,
                             "message": f"entry {seq} does not follow the hash of the entry before it"})
        if entry_hash(entry["prev_hash"], entry) != entry["hash"]:
            problems.append({"code": "hash_mismatch", "seq": seq,
                             "message": f"entry {seq} ({entry['reference']}) does not match its hash: changed"})
        expected_seq, prev = seq + 1, entry["hash"]
    return problems
