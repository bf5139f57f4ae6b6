"""The relay: sends one destination's waiting messages, serially, in stream order, over HTTP(S) with a
signed request, and records each answer (services). Run by the `federation.relay` job, one job per
destination at a time (tasks.py); a transport failure ends the run and schedules the next one after the
message's back-off."""

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import transaction

from tarifa.kernel.clock import now

from . import selectors, services, signatures
from .models import Node, OutboundMessage

log = logging.getLogger(__name__)

RUN_SECONDS = 60  # one run sends for at most this long, then hands over to a new job (lets workers stop)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a peer that redirects is misconfigured: an error, not a second request


# Direct connections only: an http(s)_proxy in the environment must not carry node traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass
class Answer:
    status: int  # 0: no answer
    body: dict
    error: str = ""


def stream_path(base_url: str, sender: str, kind: str) -> str:
    prefix = urlsplit(base_url).path.rstrip("/")
    return f"{prefix}/federation/v1/streams/{quote(sender, safe='')}/{quote(kind, safe='')}/messages"


def post(node: Node, message: OutboundMessage) -> Answer:
    body = json.dumps(message.envelope(), separators=(",", ":"), sort_keys=True).encode()
    path = stream_path(node.base_url, message.sender, message.kind)
    parts = urlsplit(node.base_url)
    url = f"{parts.scheme}://{parts.netloc}{path}"
    key = services.own_signing_key()
    headers = signatures.sign_request(method="POST", path=path, body=body, key_id=key.key_id,
                                      private_key=signatures.private_from_text(key.private_key))
    headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with _opener.open(request, timeout=settings.TARIFA_FEDERATION_TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return Answer(0, {}, f"no answer from {node.base_url}: {getattr(exc, 'reason', exc)}")
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    text = f"HTTP {status}" + (f" {error.get('code')}: {error.get('message')}" if error else "")
    return Answer(status, data, text if status != 200 else "")


def run(receiver: str, *, run_seconds: float = RUN_SECONDS) -> dict:
    """Send what waits for `receiver` until nothing is due, a failure, or `run_seconds`. Returns counts."""
    done = {"receiver": receiver, "sent": 0, "retry_at": None, "stopped": False}
    if not selectors.enabled():
        return done
    node = Node.objects.filter(code=receiver, archived_at__isnull=True).first()
    if node is None:
        log.warning("federation relay: no active node %s in the registry; its messages wait", receiver)
        return done
    started = time.monotonic()
    while True:
        services.number_messages(receiver)
        message = services.next_to_send(receiver)
        if message is None:
            return done
        if message.next_attempt_at and message.next_attempt_at > now():
            with transaction.atomic():
                services._defer_relay(receiver, at=message.next_attempt_at)
            done["retry_at"] = message.next_attempt_at.isoformat()
            return done
        if time.monotonic() - started > run_seconds:
            with transaction.atomic():
                services._defer_relay(receiver)
            return done
        answer = post(node, message)
        next_expected = answer.body.get("next_expected")
        expected = answer.body.get("expected")
        code = (answer.body.get("error") or {}).get("code") if isinstance(answer.body.get("error"), dict) else None
        if answer.status == 200 and isinstance(next_expected, int):
            if services.acknowledged(message, next_expected=next_expected, result=answer.body.get("result")):
                done["sent"] += 1
            else:
                done["stopped"] = True
        elif answer.status == 409 and code == "out_of_order" and isinstance(expected, int):
            if not services.rewind(message, expected=expected):
                done["stopped"] = True
        elif answer.status == 409 and code == "seq_conflict":
            services.stop_stream(receiver, message.kind, answer.error)
            done["stopped"] = True
        elif answer.status == 422 or (answer.status == 400 and code in ("bad_envelope", "wrong_receiver")):
            services.refused(message, answer.error)
            done["stopped"] = True
        else:
            failed = services.attempt_failed(message, answer.error or f"HTTP {answer.status}")
            log.warning("federation relay to %s: %s (attempt %s, next at %s)", receiver, failed.last_error,
                        failed.attempts, failed.next_attempt_at)
            with transaction.atomic():
                services._defer_relay(receiver, at=failed.next_attempt_at)
            done["retry_at"] = failed.next_attempt_at.isoformat()
            return done
