"""A Diameter Gy/Ro client on python-diameter's own Node: for tests, the benchmark and trying a server.

    with GyClient("127.0.0.1", 3868, origin_host="pgw.demo.localdomain", realm="demo.localdomain") as gy:
        cca = gy.initial("sess-1", "+15550100", seconds=300, destination="442071234567")
        cca = gy.update("sess-1", used_seconds=300, seconds=300)
        cca = gy.terminate("sess-1", used_seconds=250)

Each call returns the Credit-Control-Answer message (result_code, multiple_services_credit_control …).
Pure protocol: no database. Also `python -m tarifa.charging.client HOST PORT NUMBER` runs a call.
"""

from __future__ import annotations

import itertools

from diameter.message import constants as C
from diameter.message.avp.grouped import (GrantedServiceUnit, ImsInformation, MultipleServicesCreditControl,
                                          ServiceInformation, SubscriptionId, UsedServiceUnit)
from diameter.message.commands.credit_control import CreditControlRequest
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

VOICE_CONTEXT = "32260@3gpp.org"
DATA_CONTEXT = "32251@3gpp.org"
SMS_CONTEXT = "32274@3gpp.org"


class GyClient:
    def __init__(self, server_ip: str, server_port: int, *, origin_host: str, realm: str,
                 server_host: str = "tarifa.localdomain", server_realm: str = "localdomain", timeout: float = 10):
        self.server_realm = server_realm
        self.origin_host, self.realm = origin_host, realm
        self.timeout = timeout
        self.node = Node(origin_host, realm, vendor_ids=[C.VENDOR_TGPP])
        self.node.wakeup_interval = 1
        self.peer = self.node.add_peer(f"aaa://{server_host}:{server_port};transport=tcp", server_realm,
                                       [server_ip], is_persistent=True, is_default=True)
        self.app = SimpleThreadingApplication(C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION, is_auth_application=True)
        self.node.add_application(self.app, [self.peer])
        self.numbers: dict[str, itertools.count] = {}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.node.start()
        self.app.wait_for_ready(self.timeout)

    def stop(self):
        self.node.stop(wait_timeout=3, force=True)

    def request(self, session_id: str, request_type: int, *, subscriber: str | None = None,
                subscriber_type: int = C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164, context: str = VOICE_CONTEXT,
                destination: str = "", requested: GrantedServiceUnit | None = None,
                used: UsedServiceUnit | None = None, rating_group: int | None = None,
                request_number: int | None = None, mscc: bool = True, requested_action: int | None = None):
        ccr = CreditControlRequest()
        ccr.session_id = session_id
        ccr.origin_host = self.origin_host.encode()
        ccr.origin_realm = self.realm.encode()
        ccr.destination_realm = self.server_realm.encode()
        ccr.service_context_id = context
        ccr.cc_request_type = request_type
        counter = self.numbers.setdefault(session_id, itertools.count())
        ccr.cc_request_number = next(counter) if request_number is None else request_number
        if subscriber:
            ccr.subscription_id = [SubscriptionId(subscriber_type, subscriber)]
        if requested_action is not None:
            ccr.requested_action = requested_action
        if destination:
            ccr.service_information = ServiceInformation(
                ims_information=ImsInformation(called_party_address=f"tel:+{destination.lstrip('+')}"))
        if request_type == C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST:
            ccr.termination_cause = C.E_TERMINATION_CAUSE_DIAMETER_LOGOUT
        if mscc:
            ccr.multiple_services_credit_control = [MultipleServicesCreditControl(
                requested_service_unit=requested, used_service_unit=[used] if used else [],
                rating_group=rating_group)]
        else:
            ccr.requested_service_unit = requested
            ccr.used_service_unit = [used] if used else []
        return self.app.send_request(ccr, timeout=self.timeout)

    # Voice (CC-Time, seconds)
    def initial(self, session_id, subscriber, *, seconds=300, destination="", **kw):
        return self.request(session_id, C.E_CC_REQUEST_TYPE_INITIAL_REQUEST, subscriber=subscriber,
                            destination=destination, requested=GrantedServiceUnit(cc_time=seconds), **kw)

    def update(self, session_id, *, used_seconds, seconds=300, **kw):
        return self.request(session_id, C.E_CC_REQUEST_TYPE_UPDATE_REQUEST, requested=GrantedServiceUnit(
            cc_time=seconds), used=UsedServiceUnit(cc_time=used_seconds), **kw)

    def terminate(self, session_id, *, used_seconds, **kw):
        return self.request(session_id, C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST,
                            used=UsedServiceUnit(cc_time=used_seconds), **kw)

    def sms(self, session_id, subscriber, *, destination="", **kw):
        return self.request(session_id, C.E_CC_REQUEST_TYPE_EVENT_REQUEST, subscriber=subscriber,
                            context=SMS_CONTEXT, destination=destination,
                            requested=GrantedServiceUnit(cc_service_specific_units=1),
                            requested_action=C.E_REQUESTED_ACTION_DIRECT_DEBITING, **kw)


def granted_seconds(cca) -> int | None:
    for part in cca.multiple_services_credit_control or []:
        if part.granted_service_unit is not None:
            return part.granted_service_unit.cc_time
    return cca.granted_service_unit.cc_time if cca.granted_service_unit else None


def mscc_result(cca) -> int | None:
    parts = cca.multiple_services_credit_control or []
    return parts[0].result_code if parts else None


def main(argv=None):  # pragma: no cover - a tool for people
    import argparse
    import time

    parser = argparse.ArgumentParser(description="Run one Gy voice call (CCR-I/U/T) against a Diameter server.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("number", help="E.164 number of the subscriber, e.g. +15550100")
    parser.add_argument("--destination", default="442071234567")
    parser.add_argument("--origin-host", default="pgw.demo.localdomain")
    parser.add_argument("--realm", default="demo.localdomain")
    parser.add_argument("--used", type=int, nargs="*", default=[300, 250], help="seconds reported per update/final")
    args = parser.parse_args(argv)
    session = f"{args.origin_host};{int(time.time())};1"
    with GyClient(args.host, args.port, origin_host=args.origin_host, realm=args.realm) as gy:
        cca = gy.initial(session, args.number, destination=args.destination)
        print("CCA-I", cca.result_code, "granted", granted_seconds(cca), "s, Origin-State-Id", cca.origin_state_id)
        for used in args.used[:-1]:
            cca = gy.update(session, used_seconds=used)
            print("CCA-U", cca.result_code, "granted", granted_seconds(cca), "s")
        cca = gy.terminate(session, used_seconds=args.used[-1])
        print("CCA-T", cca.result_code)


if __name__ == "__main__":  # pragma: no cover
    main()
