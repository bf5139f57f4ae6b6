"""Demo online charging: a Diameter peer on 127.0.0.1, rating groups for the demo's usage types (RG 10
data, 20 voice, 30 sms, Service-Identifier 400 vod), a prepaid mobile subscriber charged online —
one call finished (CCR-I/U/T) and its CDR imported later (matched semi-online, the difference
booked as a correction), one still open with its reservation — and an SMS event.

Goes through the services. Loading twice changes nothing.
"""

from tarifa.rating import usage
from tarifa.subscriptions.models import Subscription

from . import services
from .models import ChargingSession, DiameterPeer, RatingGroup

DEMO_PEER = "pgw.demo.localdomain"
DEMO_REALM = "demo.localdomain"
SECOND = 10**9
RATING_GROUPS = [("rating_group", 10, "data", "Internet (PS data)"), ("rating_group", 20, "voice", "Voice (IMS)"),
                 ("rating_group", 30, "sms", "SMS"), ("service_identifier", 400, "vod", "Video on demand")]


def load(*, actor) -> dict:
    if not DiameterPeer.objects.filter(origin_host=DEMO_PEER).exists():
        services.create_peer(actor=actor, origin_host=DEMO_PEER, realm=DEMO_REALM, ip_address="127.0.0.1",
                             note="Demo network element: the test client of docs/charging.md.")
    if not RatingGroup.objects.exists():
        for kind, number, usage_type, note in RATING_GROUPS:
            services.create_rating_group(actor=actor, kind=kind, number=number, usage_type=usage_type, note=note)
    sub = (Subscription.objects.filter(tariff__code="MOB-DAY", status="active", billing_account__payment_mode="prepaid")
           .exclude(phone_number="").order_by("number").first())
    if sub is None or ChargingSession.objects.filter(external_id__startswith="demo;").exists():
        return {"peers": DiameterPeer.objects.count(), "sessions": ChargingSession.objects.count()}
    number = sub.phone_number
    done = services.start(actor=actor, identifier=number, usage_type="voice", external_id="demo;call;1",
                          origin="diameter", peer=DEMO_PEER, destination="442071234567", requested=300 * SECOND)
    if done.ok:
        services.update(done.session, actor=actor, used=300 * SECOND, requested=300 * SECOND, request_number=1)
        services.terminate(done.session, actor=actor, used=250 * SECOND, request_number=2)
        # Semi-online: the switch's CDR of the same call comes later, 10 s longer than reported
        # online; it is matched (not charged twice) and the difference booked as a correction.
        started = ChargingSession.objects.get(pk=done.session).started_at
        usage.import_records([{"record_id": "demo-call-1", "subject": number, "destination": "442071234567",
                               "type": "voice", "start_time": started.isoformat(), "usage": "560s"}],
                             actor=actor, source="demo-switch")
    services.start(actor=actor, identifier=number, usage_type="voice", external_id="demo;call;2", origin="diameter",
                   peer=DEMO_PEER, destination="4915112345678", requested=120 * SECOND)
    services.event(actor=actor, identifier=number, usage_type="sms", external_id="demo;sms;1", origin="http",
                   destination="15551230000", units=1)
    return {"peers": DiameterPeer.objects.count(), "sessions": ChargingSession.objects.count()}
