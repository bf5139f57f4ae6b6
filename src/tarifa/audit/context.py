"""Who is acting and from where, for the audit trail of the current request or job."""

import contextlib
import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str = ""
    channel: str = ""  # ui, api, cli, job


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("tarifa_request", default=RequestContext())


def current() -> RequestContext:
    return _current.get()


@contextlib.contextmanager
def bind(**values):
    token = _current.set(RequestContext(**values))
    try:
        yield
    finally:
        _current.reset(token)
