"""Reads about serving other branches' subscribers (the screens, the API, the demo harness)."""

from django.db.models import Count, Sum

from tarifa.kernel.errors import NotFound

from .models import ForeignPayment, ReceivedPayment


def pending_for(account_number: str):
    """Foreign payments taken here for `account_number` not yet applied by its owner."""
    return ForeignPayment.objects.filter(account_number=str(account_number).strip().upper(),
                                         status=ForeignPayment.Status.PENDING).order_by("created_at")


def totals_by_branch() -> dict:
    """{owner branch: {status: {currency: (count, amount)}}}: what this branch took for each other branch."""
    out: dict = {}
    for row in (ForeignPayment.objects.values("owner_branch", "status", "currency")
                .annotate(n=Count("id"), total=Sum("amount")).order_by("owner_branch", "status", "currency")):
        out.setdefault(row["owner_branch"], {}).setdefault(row["status"], {})[row["currency"]] = (row["n"], row["total"])
    return out


def received_by_branch() -> dict:
    """{sender: {currency: (count, amount)}}: what this branch applied from each other branch."""
    out: dict = {}
    for row in (ReceivedPayment.objects.values("sender", "currency").annotate(n=Count("id"), total=Sum("amount"))
                .order_by("sender", "currency")):
        out.setdefault(row["sender"], {})[row["currency"]] = (row["n"], row["total"])
    return out


# --- cross-branch reads (docs/federation.md, "Cross-branch reads") ---

SEARCH_TIMEOUT = 2.0
CARD_TIMEOUT = 2.0


def peer_branches() -> list[str]:
    from tarifa.federation import selectors as federation
    from tarifa.federation.models import Node

    return list(Node.objects.filter(role=Node.Role.BRANCH, archived_at__isnull=True)
                .exclude(code=federation.own_code()).order_by("code").values_list("code", flat=True))


def search_federation(q: str, *, timeout: float = SEARCH_TIMEOUT) -> dict:
    """Every subscriber of the federation matching `q` exactly (number, phone, login, contract): this
    branch's at once, the other branches' asked concurrently, each within `timeout` seconds. Results carry
    their owner branch; branches that did not answer are listed in `unreachable` ({code: message})."""
    from tarifa.federation import queries
    from tarifa.federation import selectors as federation

    from .queries import search_local

    q = str(q or "").strip()
    out = {"q": q, "results": [], "unreachable": {}, "asked": []}
    if not q:
        return out
    own = federation.own_code()
    out["results"] = [{**r, "branch": own} for r in search_local(q)]
    if federation.enabled():
        peers = peer_branches()
        out["asked"] = peers
        for code, answer in queries.ask_many(peers, "interbranch.search", {"q": q}, timeout=timeout).items():
            if answer.ok and isinstance(answer.result, list):
                out["results"] += [{**r, "branch": code} for r in answer.result if isinstance(r, dict)]
            else:
                out["unreachable"][code] = answer.error.get("message", "no answer")
    return out


def foreign_card(branch: str, number: str, *, timeout: float = CARD_TIMEOUT) -> dict:
    """The card of `number` (a customer or account number) at its owner `branch`: live when the owner answers
    within `timeout` (and kept as the last known card), else the last known card marked stale since when it
    was fetched. Also what is pending here for the subscriber (foreign payments the owner has not applied).
    {"branch", "number", "live", "card" (or None), "fetched_at", "error", "not_found", "pending"}."""
    from tarifa.federation import queries

    from . import services
    from .models import SubscriberCard

    branch, number = str(branch or "").strip().upper(), str(number or "").strip().upper()
    out = {"branch": branch, "number": number, "live": False, "card": None, "fetched_at": None, "error": "",
           "not_found": False, "pending": []}
    from tarifa.federation import selectors as federation

    from .queries import card_local

    if branch == federation.own_code():
        try:
            answer = queries.Answer(branch, True, result=card_local(number))
        except NotFound as exc:
            answer = queries.Answer(branch, False, error=exc.as_dict())
    else:
        answer = queries.ask_many([branch], "interbranch.card", {"number": number}, timeout=timeout)[branch]
    if answer.ok and isinstance(answer.result, dict) and branch != federation.own_code():
        services.remember_card(branch=branch, card=answer.result, asked=number)
    if answer.ok and isinstance(answer.result, dict):
        out.update(live=True, card=answer.result, fetched_at=answer.result.get("as_of"))
    else:
        out["error"] = answer.error.get("message", "no answer")
        out["not_found"] = answer.error.get("code") == "subscriber_not_found"
        if not out["not_found"]:
            known = SubscriberCard.objects.filter(owner_branch=branch, number=number).first()
            if known is not None:
                out.update(card=known.card, fetched_at=known.fetched_at.isoformat())
    accounts = {number}
    if out["card"]:
        accounts |= {str(a.get("number") or "").upper() for a in out["card"].get("accounts") or []}
    out["pending"] = [{"number": fp.number, "account": fp.account_number, "amount": f"{fp.amount:f}",
                       "currency": fp.currency, "taken_at": fp.created_at.isoformat(), "id": str(fp.id)}
                      for fp in ForeignPayment.objects.filter(owner_branch=branch, account_number__in=accounts,
                                                              status=ForeignPayment.Status.PENDING)
                      .order_by("created_at")]
    return out
