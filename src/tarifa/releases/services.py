"""The write path of reference releases (docs/federation.md, "Reference releases").

Centre: `publish` takes a snapshot of the declared reference data, numbers it, hashes and signs it with the
centre's node key. Branch: `pull` asks the centre for the releases after the one in force (a signed GET) and
`receive` checks and applies each one, in order, each in one transaction; a release it cannot apply is
refused, recorded (`ReleaseRefusal`, reported by `tarifa federation status`) and the branch keeps its last."""

import base64
import datetime as dt
import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction

from tarifa.audit import services as recorded
from tarifa.federation import selectors as federation
from tarifa.federation import services as federation_services
from tarifa.federation import signatures
from tarifa.federation.models import Node
from tarifa.kernel.clock import now, today
from tarifa.kernel.errors import Conflict, DomainError, ValidationFailed

from . import content, selectors
from .models import NumberRange, PullState, Release, ReleaseRefusal

log = logging.getLogger(__name__)

PAGE = 10  # releases per answer of the centre's endpoint


class NotTheCentre(DomainError):
    code = "not_the_centre"
    status = 409


class Refused(Exception):
    """A release this branch will not apply; `code` is stored with the refusal."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _lock(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])


# --- the centre: publishing ---

def header(release: Release) -> dict:
    """What the signature covers (the content through its hash)."""
    return {"number": release.number, "format": release.format_version,
            "effective_date": release.effective_date.isoformat(), "centre": release.centre,
            "published_at": release.published_at.astimezone(dt.UTC).isoformat(),
            "content_hash": release.content_hash, "key_id": release.key_id}


def preview() -> dict:
    """What a release published now would hold, and its difference from the last one (the publish screen)."""
    data = content.snapshot()
    last = Release.objects.order_by("-number").first()
    return {"next_number": (last.number + 1) if last else 1, "previous": last.number if last else None,
            "counts": content.counts(data),
            "changes": content.diff(json.loads(last.content) if last else None, data),
            "unchanged": bool(last) and content.digest(content.canonical(data)) == last.content_hash}


@transaction.atomic
def publish(*, actor, effective_date: dt.date | None = None, note: str = "") -> Release:
    """Publish the centre's reference data as the next release (immutable, numbered, signed)."""
    if federation.role() == "branch":
        raise NotTheCentre("A branch does not publish reference releases: the centre does (a standalone node may, "
                           "to try it; only a centre serves them).")
    _lock("tarifa.releases.publish")  # numbers in order, one snapshot at a time
    data = content.snapshot()
    text = content.canonical(data)
    last = Release.objects.order_by("-number").first()
    if last is not None and content.digest(text) == last.content_hash:
        raise Conflict(f"Nothing changed since release {last.number}: there is nothing to publish.",
                       code="nothing_changed")
    effective = effective_date or today()
    if last is not None and effective < last.effective_date:
        raise ValidationFailed(f"The effective date may not precede release {last.number}'s "
                               f"({last.effective_date}).", fields={"effective_date": ["Too early."]})
    key = federation_services.own_signing_key()
    release = Release(number=(last.number + 1) if last else 1, format_version=content.FORMAT,
                      effective_date=effective, centre=federation.own_code(), published_at=now(),
                      published_by=recorded.actor_label(actor)[:150], note=note, content=text.decode(),
                      content_hash=content.digest(text), key_id=key.key_id, counts=content.counts(data),
                      changes=content.diff(json.loads(last.content) if last else None, data),
                      origin=Release.Origin.PUBLISHED)
    private = signatures.private_from_text(key.private_key)
    release.signature = base64.b64encode(private.sign(content.canonical(header(release)))).decode()
    release.save(force_insert=True)
    recorded.record(release, actor=actor, action="publish", changes={"number": [None, release.number]},
                    message=note)
    return release


def bundle(release: Release) -> dict:
    """A release as the centre serves it: the signed header, the signature and the content text."""
    return {**header(release), "signature": release.signature, "content": release.content}


# --- a branch: checking and applying ---

def verify(data: dict) -> tuple[dict, dict]:
    """Check a bundle: format, the centre's signature, the content hash. Returns (header, content)."""
    try:
        head = {k: data[k] for k in ("number", "format", "effective_date", "centre", "published_at",
                                     "content_hash", "key_id")}
        signature, text = data["signature"], data["content"]
        number = int(head["number"])
    except (KeyError, TypeError, ValueError):
        raise Refused("bad_release", "The release is incomplete.") from None
    if not isinstance(head["format"], int) or head["format"] > content.FORMAT:
        raise Refused("format_too_new", f"Release {number} is in format {head['format']}; this node reads up to "
                                        f"format {content.FORMAT}. Upgrade this node, then pull again.")
    centre = Node.objects.filter(role=Node.Role.CENTRE, archived_at__isnull=True).first()
    node = federation.node_of_key(head["key_id"])
    if centre is None or node is None or node.pk != centre.pk or head["centre"] != centre.code:
        raise Refused("not_the_centre", f"Release {number} is signed with {head['key_id']}, which is not the "
                                        f"centre's key: only the centre signs releases.")
    try:
        published = dt.datetime.fromisoformat(head["published_at"])
        keys = federation.public_keys(head["key_id"], published)
    except (TypeError, ValueError):
        keys = []
    try:
        raw = base64.b64decode(signature, validate=True)
    except (ValueError, TypeError):
        raw = b""
    message = content.canonical(head)
    if not any(_verifies(k, raw, message) for k in keys):
        raise Refused("bad_signature", f"Release {number}'s signature does not verify with the centre's key "
                                       f"{head['key_id']} valid at its publication time.")
    if not isinstance(text, str) or content.digest(text.encode()) != head["content_hash"]:
        raise Refused("bad_hash", f"Release {number}'s content is not the content the centre signed.")
    try:
        body = json.loads(text)
    except ValueError:
        raise Refused("bad_release", f"Release {number}'s content is not JSON.") from None
    if body.get("format") != head["format"]:
        raise Refused("bad_release", f"Release {number}'s content says format {body.get('format')}.")
    return head, body


def _verifies(key, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(signature, message)
        return True
    except InvalidSignature:
        return False


def _refuse(number: int, code: str, message: str) -> ReleaseRefusal:
    """Record (or refresh) a refusal; it is reported until a release with that number is applied."""
    with transaction.atomic():
        refusal = ReleaseRefusal.objects.filter(number=number, code=code, resolved_at__isnull=True).first()
        if refusal is None:
            refusal = ReleaseRefusal.objects.create(number=number, code=code, message=message, at=now())
            log.warning("reference release %s refused: %s", number, message)
        else:
            refusal.message, refusal.at = message, now()
            refusal.save(update_fields=["message", "at"])
        return refusal


def receive(data: dict, *, actor="system") -> dict:
    """Check and apply one release bundle. Returns {"number", "status": applied|duplicate|refused, …}."""
    number = data.get("number") if isinstance(data, dict) else None
    try:
        head, body = verify(data)
    except Refused as exc:
        _refuse(int(number) if isinstance(number, int) else 0, exc.code, exc.message)
        return {"number": number, "status": "refused", "code": exc.code, "message": exc.message}
    number = head["number"]
    try:
        with transaction.atomic():
            _lock("tarifa.releases.apply")
            in_force = selectors.in_force_number()
            if number <= in_force:
                return {"number": number, "status": "duplicate"}
            if number != in_force + 1:
                raise Refused("gap", f"Release {number} follows release {in_force + 1}, which this branch has not "
                                     f"applied.")
            summary = content.apply(body, owner=head["centre"])
            if any(label.startswith("rating.") for label in summary):
                from django.db.models import F

                from tarifa.rating.models import RatingTenant

                # the rating engine reloads a tenant's plan when its version moves (rating/plans.py)
                RatingTenant.objects.update(plan_version=F("plan_version") + 1, updated_at=now())
            release = Release.objects.create(
                number=number, format_version=head["format"], effective_date=dt.date.fromisoformat(
                    head["effective_date"]), centre=head["centre"], published_at=head["published_at"],
                content=data["content"], content_hash=head["content_hash"], key_id=head["key_id"],
                signature=data["signature"], counts=content.counts(body), changes=summary,
                origin=Release.Origin.RECEIVED, applied_at=now())
            ReleaseRefusal.objects.filter(number__lte=number, resolved_at__isnull=True).update(resolved_at=now())
            recorded.record(release, actor=actor, action="apply", changes={"number": [in_force, number]},
                            message=json.dumps(summary, sort_keys=True)[:2000])
    except Refused as exc:
        _refuse(number, exc.code, exc.message)
        return {"number": number, "status": "refused", "code": exc.code, "message": exc.message}
    except (content.ContentError, DomainError, ValueError) as exc:
        message = f"Release {number} could not be applied; nothing of it was written: {exc}"
        _refuse(number, "cannot_apply", message)
        return {"number": number, "status": "refused", "code": "cannot_apply", "message": message}
    return {"number": number, "status": "applied", "changes": summary}


# --- a branch: pulling from the centre ---

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(centre: Node, after: int) -> dict:
    """GET <centre>/federation/v1/releases?after=N, signed with this node's key. Raises DomainError."""
    base = urlsplit(centre.base_url)
    path = f"{base.path.rstrip('/')}/federation/v1/releases"
    key = federation_services.own_signing_key()
    headers = signatures.sign_request(method="GET", path=path, body=b"", key_id=key.key_id,
                                      private_key=signatures.private_from_text(key.private_key))
    request = urllib.request.Request(f"{base.scheme}://{base.netloc}{path}?after={after}&limit={PAGE}",
                                     method="GET", headers=headers)
    try:
        with _opener.open(request, timeout=settings.TARIFA_FEDERATION_TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            error = json.loads(raw).get("error", {})
        except (ValueError, AttributeError):
            error = {}
        raise DomainError(f"The centre answered HTTP {exc.code} {error.get('code', '')}: {error.get('message', '')}",
                          code="centre_refused", status=502) from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        raise DomainError(f"No answer from the centre at {centre.base_url}: {getattr(exc, 'reason', exc)}",
                          code="centre_unreachable", status=503) from None


def pull(*, actor="system") -> dict:
    """Apply every release the centre has after the one in force, in order; stop at the first refused."""
    if federation.role() != "branch":
        raise DomainError("Only a branch pulls reference releases (TARIFA_NODE_ROLE=branch).", code="not_a_branch",
                          status=409)
    centre = Node.objects.filter(role=Node.Role.CENTRE, archived_at__isnull=True).first()
    if centre is None:
        raise DomainError("No centre is registered (Administration › Nodes).", code="no_centre", status=409)
    state, _ = PullState.objects.get_or_create(id=1)
    state.last_attempt_at = now()
    results = []
    try:
        while True:
            answer = fetch(centre, selectors.in_force_number())
            bundles = answer.get("releases") or []
            if not bundles:
                break
            stop = False
            for data in sorted(bundles, key=lambda b: b.get("number", 0)):
                result = receive(data, actor=actor)
                results.append({k: v for k, v in result.items() if k != "changes"})
                if result["status"] == "refused":
                    stop = True
                    break
            if stop:
                break
    except DomainError as exc:
        state.last_error = exc.message
        state.save()
        raise
    state.last_success_at, state.last_error = now(), ""
    state.save()
    return {"in_force": selectors.in_force_number(), "releases": results,
            "refused": any(r["status"] == "refused" for r in results)}


# --- number ranges (centrally owned: edited at the centre, published in releases) ---

def _check_range(kind, first, last, exclude=None):
    if not first or not last:
        raise ValidationFailed("Give the first and the last identifier.", fields={"first": ["Required."]})
    if len(first) == len(last) and first.isdigit() and last.isdigit() and int(first) > int(last):
        raise ValidationFailed("The range ends before it starts.", fields={"last": ["Before the first."]})
    qs = NumberRange.objects.filter(kind=kind, archived_at__isnull=True)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    for other in qs:
        if (len(other.first) == len(first) and first.isdigit() and other.first.isdigit()
                and int(first) <= int(other.last) and int(other.first) <= int(last)):
            raise ValidationFailed(f"It overlaps {other}.", fields={"first": ["Overlaps another range."]})


@transaction.atomic
def create_number_range(*, actor, kind, first, last, assigned_branch, note="") -> NumberRange:
    _check_range(kind, first, last)
    return recorded.create(NumberRange, actor=actor, kind=kind, first=first, last=last,
                           assigned_branch=assigned_branch, note=note)


@transaction.atomic
def update_number_range(obj, *, actor, **changes) -> NumberRange:
    merged = {"kind": obj.kind, "first": obj.first, "last": obj.last, **changes}
    _check_range(merged["kind"], merged["first"], merged["last"], exclude=obj.pk)
    return recorded.update(obj, actor=actor, **changes)


def archive_number_range(obj, *, actor, reason="") -> NumberRange:
    return recorded.archive(obj, actor=actor, reason=reason)
