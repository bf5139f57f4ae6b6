"""`Idempotency-Key` for API writes (ARCHITECTURE.md rule 5).

A client sends `Idempotency-Key: <1–200 visible ASCII characters>` with a POST. The
first request runs; its 2xx answer is stored with a hash of its body, in the same
transaction as its writes. A retry with the same key (same scope, i.e. same user by
default) and the same method, path and body gets the stored answer again, with the
header `Idempotent-Replayed: true`, and writes nothing. The same key with another
body, method or path answers 409 `idempotency_conflict`. Two identical requests at
once: the second waits for the first to commit, then replays its answer.

Errors are not stored: a request refused with 4xx wrote nothing, so its retry runs
again (and may succeed once, say, the account has funds).

Use on a DRF view method (under `@action`):

    from tarifa.web.idempotency import idempotent, service_key

    @action(detail=True, methods=["post"], required_permission="ledger.adjust")
    @idempotent
    def adjust(self, request, pk=None):
        transfer = services.adjust(..., idempotency_key=service_key(request))

`service_key(request)` turns the header into a key for the service layer
("http:<scope>:<key>"), so the ledger's own idempotency backs up this one.
`@idempotent(required=False)` lets requests without the header through (then
`service_key()` returns None); `@idempotent(scope=lambda request: "gateway:T1")`
names whose keys they are when there is no user.
"""

import functools
import hashlib
import json
import re
from contextlib import ExitStack

from django.db import connection, transaction
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from tarifa.kernel.clock import now
from tarifa.kernel.errors import Conflict, ValidationFailed
from tarifa.kernel.roundtrips import one_round_trip

from .models import IdempotentRequest

HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")


def default_scope(request) -> str:
    user = getattr(request, "user", None)
    return f"user:{user.pk}" if user is not None and getattr(user, "pk", None) else "anonymous"


def body_hash(data) -> str:
    """SHA-256 of the request's parsed body in canonical JSON: key order and spacing do not count."""
    if hasattr(data, "dict"):  # QueryDict (form or multipart bodies)
        data = {k: data.getlist(k) for k in sorted(data.keys())}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), cls=JSONEncoder, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def header_key(request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not KEY_PATTERN.match(raw):
        raise ValidationFailed("The Idempotency-Key header must be 1–200 visible ASCII characters.",
                               code="invalid_idempotency_key", fields={HEADER: ["1–200 visible ASCII characters."]})
    return raw


CLAIM_SQL = """
INSERT INTO web_idempotentrequest (scope, key, method, path, body_hash, created_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (scope, key) DO NOTHING
RETURNING id, created_at
"""


def claim(*, scope: str, key: str, method: str, path: str, digest: str):
    """Take the key for this request, in the caller's transaction.

    Returns (record, None) when this request is the first — run it, then `complete()`;
    or (record, stored Response) when it was answered before; raises Conflict
    `idempotency_conflict` when the key was used for a different request. Waits while
    a concurrent request holds the same key.
    """
    for _attempt in range(3):
        with connection.cursor() as cursor:
            cursor.execute(CLAIM_SQL, [scope, key, method, path[:500], digest, now()])
            inserted = cursor.fetchone()
        if inserted is not None:
            # The row as inserted (no read back): complete() updates it by its primary key.
            record = IdempotentRequest(id=inserted[0], scope=scope, key=key, method=method, path=path[:500],
                                       body_hash=digest, created_at=inserted[1])
            record._state.adding, record._state.db = False, connection.alias
            return record, None
        # Held by a concurrent request: FOR UPDATE waits for it to commit or roll back.
        record = IdempotentRequest.objects.select_for_update().filter(scope=scope, key=key).first()
        if record is None:  # it rolled back: the key is free again
            continue
        if (record.method, record.path, record.body_hash) != (method, path[:500], digest):
            raise Conflict(f"The Idempotency-Key {key!r} was used for a different request "
                           f"({record.method} {record.path}).", code="idempotency_conflict",
                           fields={HEADER: ["Already used for a different request."]})
        replay = Response(record.response_body, status=record.response_status)
        replay["Idempotent-Replayed"] = "true"
        return record, replay
    raise Conflict("The request could not take its Idempotency-Key; retry.", code="idempotency_busy")


def complete(record: IdempotentRequest, response) -> None:
    body = getattr(response, "data", None)
    record.response_status = response.status_code
    record.response_body = json.loads(json.dumps(body, cls=JSONEncoder)) if body is not None else None
    record.completed_at = now()
    # An UPDATE by key that reads no answer (not save(), which checks the row count): it may be
    # sent in one round trip with the COMMIT.
    IdempotentRequest.objects.filter(pk=record.pk).update(
        response_status=record.response_status, response_body=record.response_body,
        completed_at=record.completed_at)


def idempotent(func=None, *, required: bool = True, scope=None):
    """Make a DRF view method honour `Idempotency-Key` (see the module docstring).

    `required=True` refuses requests without the header: 400 `idempotency_key_required`.
    """

    def decorate(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            key = header_key(request)
            request.idempotency_scope = (scope or default_scope)(request)
            request.idempotency_key = key
            if key is None:
                if required:
                    raise ValidationFailed("This request moves money: send an Idempotency-Key header.",
                                           code="idempotency_key_required", fields={HEADER: ["Required."]})
                return view_method(self, request, *args, **kwargs)
            with ExitStack() as batch, transaction.atomic():
                record, replay = claim(scope=request.idempotency_scope, key=key, method=request.method,
                                       path=request.path, digest=body_hash(request.data))
                if replay is not None:
                    return replay
                response = view_method(self, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    # The stored answer and the COMMIT (or RELEASE) in one round trip.
                    batch.enter_context(one_round_trip())
                    complete(record, response)
                else:
                    transaction.set_rollback(True)
                return response

        wrapper.idempotency_key_required = required  # the OpenAPI schema declares the header (web.schema)
        return wrapper

    return decorate(func) if func is not None else decorate


MAX_SERVICE_KEY = 160


def service_key(request, suffix: str = "") -> str | None:
    """The key a service should use for the movement this request makes, or None.

    "http:<scope>:<key><suffix>", or its SHA-256 when that would be longer than 160
    characters (services take keys of up to 200)."""
    key = getattr(request, "idempotency_key", None)
    if key is None:
        return None
    full = f"http:{request.idempotency_scope}:{key}{suffix}"
    if len(full) > MAX_SERVICE_KEY:
        return "http-sha256:" + hashlib.sha256(full.encode()).hexdigest()
    return full


def purge(*, older_than) -> int:
    """Forget answers older than `older_than` (a datetime); returns how many rows went."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=older_than).delete()
    return deleted
