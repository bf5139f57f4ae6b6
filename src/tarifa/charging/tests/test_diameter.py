"""The Diameter Gy/Ro server over loopback, against a client on python-diameter's own Node."""

import json
from decimal import Decimal
import time
from io import StringIO

import pytest
from diameter.message import constants as C
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication
from django.core.management import call_command

from tarifa.kernel import clock
from tarifa.testing.processes import free_port

from .. import services
from ..client import GyClient, granted_seconds, mscc_result
from ..diameter import build_node
from ..models import ChargingSession, DiameterPeer
from .helpers import ACTOR, DAY, available, funded_subscriber, ledger_clean, world

pytestmark = pytest.mark.django_db(transaction=True)
PGW = "pgw.test.localdomain"


@pytest.fixture
def server():
    w = world()
    services.create_peer(actor=ACTOR, origin_host=PGW, realm="test.localdomain", ip_address="127.0.0.1")
    port = free_port()
    node = build_node(host="127.0.0.1", port=port, workers=4)
    node.wakeup_interval = 1
    node.start()
    yield w, port, node
    node.stop(wait_timeout=3, force=True)


def test_ccr_initial_update_terminate_event_over_diameter(server):
    w, port, node = server
    with clock.travel_to(DAY), GyClient("127.0.0.1", port, origin_host=PGW, realm="test.localdomain") as gy:
        # The server records the peer as connected just after it answers the CER: wait for that write.
        deadline = time.monotonic() + 10
        while DiameterPeer.objects.get(origin_host=PGW).state != "connected":
            assert time.monotonic() < deadline, "the peer was never recorded as connected"
            time.sleep(0.02)
        i = gy.initial("pgw;1;call", "15550001", seconds=300, destination="4420123")
        assert i.result_code == 2001 and granted_seconds(i) == 300
        assert i.origin_state_id == node.state_id and i.cc_request_number == 0
        assert i.multiple_services_credit_control[0].validity_time == services.validity()
        u = gy.update("pgw;1;call", used_seconds=300, seconds=300)
        assert u.result_code == 2001 and granted_seconds(u) == 300
        again = gy.update("pgw;1;call", used_seconds=300, seconds=300, request_number=1)  # a retransmission
        assert again.result_code == 2001 and granted_seconds(again) == 300
        t = gy.terminate("pgw;1;call", used_seconds=250)
        assert t.result_code == 2001 and t.origin_state_id == i.origin_state_id
        sms = gy.sms("pgw;2;sms", "15550001", destination="15550002")
        assert sms.result_code == 2001
        assert sms.multiple_services_credit_control[0].granted_service_unit.cc_service_specific_units == 1
        unknown = gy.initial("pgw;3;call", "19990000", seconds=60, destination="4420123")
        assert unknown.result_code == C.E_RESULT_CODE_DIAMETER_USER_UNKNOWN == 5030
    call = ChargingSession.objects.get(external_id="pgw;1;call")
    assert call.used_units == 550 * 10**9 and call.state == "closed" and call.peer == PGW
    out = StringIO()
    call_command("rating", "cost", "--tenant", "tarifa", "--category", "call", "--subject", "MOB", "--destination",
                 "4420123", "--answer-time", DAY.isoformat(), "--usage", "550s", stdout=out)
    assert call.charged == Decimal(json.loads(out.getvalue())["cost"]) == Decimal("5.55")
    assert available(w["prepaid"]) == Decimal("100") - Decimal("5.55") - Decimal("0.05")  # charged once
    ledger_clean()


def test_insufficient_balance_over_diameter(server):
    w, port, _node = server
    funded_subscriber(w, "+15550009", funds="1.25")
    with clock.travel_to(DAY), GyClient("127.0.0.1", port, origin_host=PGW, realm="test.localdomain") as gy:
        i = gy.initial("pgw;9", "15550009", seconds=300, destination="4420123")
        assert i.result_code == 2001 and granted_seconds(i) == 120
        fui = i.multiple_services_credit_control[0].final_unit_indication
        assert fui.final_unit_action == C.E_FINAL_UNIT_ACTION_TERMINATE
        u = gy.update("pgw;9", used_seconds=120, seconds=300)
        assert u.result_code == 4012 and mscc_result(u) == 4012
        gy.terminate("pgw;9", used_seconds=0)
    ledger_clean()


def test_unknown_peer_is_refused_at_cer(server):
    _w, port, _node = server
    client = Node("intruder.example.net", "example.net")
    client.wakeup_interval = 1
    peer = client.add_peer(f"aaa://tarifa.localdomain:{port};transport=tcp", "localdomain", ["127.0.0.1"],
                           is_persistent=True, is_default=True)
    app = SimpleThreadingApplication(C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION, is_auth_application=True)
    client.add_application(app, [peer])
    client.start()
    try:
        assert not app.is_ready.wait(3)  # CEA 3010 DIAMETER_UNKNOWN_PEER: never ready
    finally:
        client.stop(wait_timeout=2, force=True)
