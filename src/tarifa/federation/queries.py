"""Synchronous signed queries between nodes: a read that needs the owner's answer now (a foreign
subscriber's card, a search), with a short timeout. Not for writes: writes go as stream messages.

The owner registers a query: `register_query("interbranch.card", answer)`; `answer(sender, params)` gets the
asking node's code (proven by the request's signature) and the JSON params, and returns a JSON-ready
result; a DomainError it raises is answered with its status and code. It runs in its own read-only
transaction.

The asker calls `ask("A", "interbranch.card", {...}, timeout=2)` (one node; raises `Unreachable`) or
`ask_many(["A", "C"], name, params, timeout=2)` (concurrently; {code: Answer}). The request is
`POST /federation/v1/query/<name>`, signed like a stream message (RFC 9421 subset), with the same checks
at the receiver: a valid key of an active node, `created` within the allowed skew."""

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from django.conf import settings

from tarifa.kernel.errors import DomainError

from . import selectors, signatures

DEFAULT_TIMEOUT = 2.0

_queries: dict[str, Callable] = {}


def register_query(name: str, func: Callable | None = None):
    def add(f):
        _queries[name] = f
        return f

    return add(func) if func is not None else add


def get(name: str) -> Callable | None:
    return _queries.get(name)


class Unreachable(DomainError):
    """The node did not answer in time, or answered with an error (the caller falls back)."""

    code = "node_unreachable"
    status = 503


@dataclass
class Answer:
    node: str
    ok: bool
    result: object = None
    error: dict = field(default_factory=dict)
    seconds: float = 0.0


def query_path(base_url: str, name: str) -> str:
    prefix = urlsplit(base_url).path.rstrip("/")
    return f"{prefix}/federation/v1/query/{quote(name, safe='')}"


@dataclass(frozen=True)
class _Target:
    code: str
    base_url: str


def _signer():
    """This node's key id and private key, read once in the caller's thread (the threads touch no database)."""
    from . import services

    key = services.own_signing_key()
    return key.key_id, signatures.private_from_text(key.private_key)


def _post(target: _Target, name: str, params: dict, timeout: float, signer) -> Answer:
    import urllib.error
    import urllib.request

    from .relay import _opener

    started = time.monotonic()
    body = json.dumps(params, separators=(",", ":"), sort_keys=True).encode()
    path = query_path(target.base_url, name)
    parts = urlsplit(target.base_url)
    key_id, private = signer
    headers = signatures.sign_request(method="POST", path=path, body=body, key_id=key_id, private_key=private)
    headers["Content-Type"] = "application/json"
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}{path}", data=body, method="POST",
                                     headers=headers)
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return Answer(target.code, False, error={"code": "node_unreachable",
                                                 "message": f"no answer from {target.code}: "
                                                            f"{getattr(exc, 'reason', exc)}"},
                      seconds=time.monotonic() - started)
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    seconds = time.monotonic() - started
    if status == 200 and "result" in data:
        return Answer(target.code, True, result=data["result"], seconds=seconds)
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    return Answer(target.code, False, error={"code": error.get("code") or f"http_{status}",
                                             "message": error.get("message") or f"HTTP {status} from {target.code}",
                                             "status": status}, seconds=seconds)


def _targets(codes) -> list[_Target]:
    from .models import Node

    nodes = {n.code: n for n in Node.objects.filter(code__in=list(codes), archived_at__isnull=True)}
    return [_Target(c, nodes[c].base_url) for c in codes if c in nodes]


def ask_many(codes, name: str, params: dict, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Answer]:
    """Ask every node of `codes` concurrently; each answer within `timeout` seconds (an unknown or archived
    node, or one that does not answer in time, is an Answer with ok=False)."""
    codes = [c for c in dict.fromkeys(codes) if c != selectors.own_code()]
    targets = _targets(codes)
    answers = {c: Answer(c, False, error={"code": "unknown_node", "message": f"No active node {c!r}."})
               for c in codes}
    if not targets:
        return answers
    if not selectors.enabled():
        return {c: Answer(c, False, error={"code": "federation_disabled", "message": "This installation is standalone."})
                for c in codes}
    signer = _signer()
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        futures = {t.code: pool.submit(_post, t, name, params, timeout, signer) for t in targets}
        for code, future in futures.items():
            answers[code] = future.result()
    return answers


def ask(code: str, name: str, params: dict, *, timeout: float = DEFAULT_TIMEOUT):
    """The result of query `name` at node `code`; Unreachable when it does not answer in time or fails."""
    answer = ask_many([code], name, params, timeout=timeout)[code]
    if not answer.ok:
        raise Unreachable(answer.error.get("message") or f"{code} did not answer.",
                          code=answer.error.get("code") or "node_unreachable")
    return answer.result


def answer(name: str, *, sender: str, params) -> tuple[int, dict]:
    """What this node answers a verified query (the endpoint's work): (HTTP status, body)."""
    from django.db import transaction

    func = get(name)
    if func is None:
        return 404, {"error": {"code": "unknown_query", "message": f"This node answers no query {name!r}.",
                               "fields": {}}}
    if not isinstance(params, dict):
        return 400, {"error": {"code": "bad_query", "message": "The body is a JSON object.", "fields": {}}}
    try:
        with transaction.atomic():
            result = func(sender, params)
            transaction.set_rollback(True)  # a query reads; nothing it might write is kept
    except DomainError as exc:
        return exc.status, {"error": exc.as_dict()}
    return 200, {"result": result}


def max_skew() -> int:
    return settings.TARIFA_FEDERATION_MAX_SKEW
