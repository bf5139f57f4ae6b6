"""Demo CoA/DM log and a reconciliation run (called by demo.py): a stand-in NAS answers on the demo
NAS's CoA port (127.0.0.1:3799) while the demo is loaded, so the log shows a real exchange; when
that port is taken (a test NAS of yours is listening there) the request goes to whatever listens."""

from . import coa_services
from .models import Session
from .nas_listener import NasListener


def load(*, actor, nas, secret: str) -> dict:
    sessions = list(Session.objects.filter(nas=nas).order_by("login")[:2])
    listener = NasListener(secret=secret, host="127.0.0.1", port=nas.coa_port)
    try:
        listener.start()
    except OSError:
        listener = None
    try:
        if len(sessions) > 1:
            coa_services.disconnect_session(sessions[-1], actor=actor)
        run = coa_services.reconcile(actor=actor, trigger="demo")
    finally:
        if listener is not None:
            listener.stop()
    return {"coa_requests": len(sessions) > 1, "reconciliation": run.differences}
