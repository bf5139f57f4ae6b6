"""The Diameter Gy/Ro credit-control server (`tarifa charging diameter`), on python-diameter.

The library does the base protocol (CER/CEA, DWR/DWA, DPR/DPA, framing, the AVP codec);
this module maps Credit-Control requests (RFC 4006 / 3GPP TS 32.299) onto the engine
(`services.start / update / terminate / event`) and the answers back onto AVPs:

- the subscriber: Subscription-Id END_USER_E164 (the phone number), else END_USER_IMSI,
  END_USER_NAI / END_USER_PRIVATE (a login), END_USER_SIP_URI (its user part);
- each Multiple-Services-Credit-Control is one charging session (`<Session-Id>;rg=<Rating-Group>`);
  its usage type comes from the operator's rating groups (`RatingGroup`: Rating-Group, else
  Service-Identifier → usage type; *Usage › Rating groups*, `/api/v1/charging/rating-groups/`,
  read through `selectors.rating_groups()`, refreshed every 30 s), else — a group not configured —
  from the Service-Context-Id (32251 PS → data, 32260/32270 IMS/MMTel → voice, 32274 SMS → sms),
  else from the unit asked for (CC-Time → voice, octets → data, service-specific units → sms);
- Requested-/Used-/Granted-Service-Unit: CC-Time (seconds), CC-Total-Octets (or input +
  output), CC-Service-Specific-Units; Validity-Time; Final-Unit-Indication (TERMINATE, or
  REDIRECT to `TARIFA_CHARGING_TOPUP_URL`); Result-Code per MSCC and for the message;
- a CC-Request-Number seen before is answered from the stored answer (charged once);
- Origin-State-Id: the server's start time, the same in every answer until it restarts.

Peers: only the `DiameterPeer` records (Origin-Host, from their IP address) pass the CER;
others get DIAMETER_UNKNOWN_PEER (3010). A peer added on the screen is admitted at its next
CER without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from diameter.message import constants as C
from diameter.message.avp.grouped import FinalUnitIndication, GrantedServiceUnit, RedirectServer
from diameter.message.commands.credit_control import CreditControlAnswer, CreditControlRequest
from diameter.node import Node
from diameter.node.application import Application
from django.db import close_old_connections

from tarifa.rating.engine import SECOND
from tarifa.rating.selectors import measure_of

from . import selectors, services
from .models import ChargingSession, DiameterPeer

log = logging.getLogger("tarifa.charging.diameter")

DEFAULT_PORT = 3868
CONTEXT_TYPES = {"32251": "data", "32260": "voice", "32270": "voice", "32274": "sms", "32276": "voice"}


def own_identity() -> tuple[str, str]:
    return (os.environ.get("TARIFA_DIAMETER_HOST") or "tarifa.localdomain",
            os.environ.get("TARIFA_DIAMETER_REALM") or "localdomain")


def rating_groups() -> dict[str, str]:
    """{"10": "data", "20": "voice", "s400": "vod"} (s: a Service-Identifier): the live `RatingGroup`s."""
    return selectors.rating_groups()


# --- reading a CCR -----------------------------------------------------------------------------

def subscriber_of(ccr) -> tuple[str, str] | None:
    """(identifier kind for the engine, value) from the Subscription-Id AVPs, E.164 first."""
    found = {}
    for sid in ccr.subscription_id or []:
        found.setdefault(sid.subscription_id_type, sid.subscription_id_data)
    if C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164 in found:
        return "e164", found[C.E_SUBSCRIPTION_ID_TYPE_END_USER_E164]
    if C.E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI in found:
        return "imsi", found[C.E_SUBSCRIPTION_ID_TYPE_END_USER_IMSI]
    for kind in (C.E_SUBSCRIPTION_ID_TYPE_END_USER_NAI, C.E_SUBSCRIPTION_ID_TYPE_END_USER_PRIVATE):
        if kind in found:
            return "login", found[kind]
    if C.E_SUBSCRIPTION_ID_TYPE_END_USER_SIP_URI in found:
        uri = found[C.E_SUBSCRIPTION_ID_TYPE_END_USER_SIP_URI]
        user = uri.split(":", 1)[-1].split("@", 1)[0]
        return ("e164" if user.lstrip("+").isdigit() else "login"), user
    if ccr.user_name:
        return "login", ccr.user_name
    return None


def destination_of(ccr) -> str:
    info = ccr.service_information
    ims = getattr(info, "ims_information", None) if info else None
    called = getattr(ims, "called_party_address", None) if ims else None
    if called:
        return called
    sms = getattr(info, "sms_information", None) if info else None
    for recipient in getattr(sms, "recipient_info", None) or []:
        for address in getattr(recipient, "recipient_address", None) or []:
            data = getattr(address, "address_data", None)
            if data:
                return data
    station = ccr.called_station_id
    if isinstance(station, bytes):
        station = station.decode(errors="replace")
    return station or ""


def _octets(unit) -> int | None:
    if unit is None:
        return None
    if unit.cc_total_octets is not None:
        return unit.cc_total_octets
    parts = [getattr(unit, "cc_input_octets", None), getattr(unit, "cc_output_octets", None)]
    return sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None


def units_of(unit, measure: str) -> int:
    """A Requested- or Used-Service-Unit in the engine's base units for a measure."""
    if unit is None:
        return 0
    if measure == "time":
        return (unit.cc_time or 0) * SECOND
    if measure == "bytes":
        return _octets(unit) or 0
    return unit.cc_service_specific_units or 0


def usage_type_for(ccr, mscc) -> str:
    mapping = rating_groups()
    rg = getattr(mscc, "rating_group", None) if mscc else None
    if rg is not None and str(rg) in mapping:
        return mapping[str(rg)]
    ids = (getattr(mscc, "service_identifier", None) if mscc else None) or (
        [ccr.service_identifier] if ccr.service_identifier is not None else [])
    for sid in ids:
        if f"s{sid}" in mapping:
            return mapping[f"s{sid}"]
    context = (ccr.service_context_id or "").split("@", 1)[0].split(".")[-1]
    if context in CONTEXT_TYPES:
        return CONTEXT_TYPES[context]
    for unit in ([getattr(mscc, "requested_service_unit", None)] + list(getattr(mscc, "used_service_unit", None) or [])
                 if mscc else [ccr.requested_service_unit, *(ccr.used_service_unit or [])]):
        if unit is None:
            continue
        if unit.cc_time is not None:
            return "voice"
        if _octets(unit) is not None:
            return "data"
        if unit.cc_service_specific_units is not None:
            return "sms"
    return "voice"


def granted_unit(granted: int, measure: str) -> GrantedServiceUnit:
    if measure == "time":
        return GrantedServiceUnit(cc_time=granted // SECOND)
    if measure == "bytes":
        return GrantedServiceUnit(cc_total_octets=granted)
    return GrantedServiceUnit(cc_service_specific_units=granted)


# --- the credit-control application --------------------------------------------------------------------

class CreditControl:
    """Turns a CCR into engine calls and a CCA (no sockets: testable alone)."""

    actor = "system:diameter"

    def answer(self, ccr: CreditControlRequest, cca: CreditControlAnswer, *, state_id: int) -> CreditControlAnswer:
        cca.cc_request_type = ccr.cc_request_type
        cca.cc_request_number = ccr.cc_request_number
        cca.origin_state_id = state_id
        peer = ccr.origin_host.decode() if isinstance(ccr.origin_host, bytes) else str(ccr.origin_host or "")
        who = subscriber_of(ccr)  # needed to open a session; updates find theirs by Session-Id
        msccs = list(ccr.multiple_services_credit_control or []) or [None]
        codes = []
        for mscc in msccs:
            code, part = self._one(ccr, mscc, who, peer)
            codes.append(code)
            if part is not None:
                cca.multiple_services_credit_control.append(part)
        failures = [c for c in codes if c != services.SUCCESS]
        if len(msccs) == 1 or len(failures) == len(codes):
            cca.result_code = codes[0] if len(msccs) == 1 else failures[0]
        else:
            cca.result_code = services.SUCCESS
        if ccr.multiple_services_credit_control is None or not ccr.multiple_services_credit_control:
            # A request without MSCC is answered at the top level.
            part = cca.multiple_services_credit_control.pop() if cca.multiple_services_credit_control else None
            if part is not None:
                cca.granted_service_unit = part.granted_service_unit
                cca.validity_time = part.validity_time
                cca.final_unit_indication = part.final_unit_indication
        return cca

    def _one(self, ccr, mscc, who, peer):
        from diameter.message.avp.grouped import MultipleServicesCreditControl

        kind, value = who or ("e164", "")
        usage_type = usage_type_for(ccr, mscc)
        measure = measure_of(usage_type)
        rg = getattr(mscc, "rating_group", None) if mscc else None
        external = ccr.session_id if rg is None else f"{ccr.session_id};rg={rg}"
        rsu = mscc.requested_service_unit if mscc else ccr.requested_service_unit
        usus = (list(mscc.used_service_unit or []) if mscc else list(ccr.used_service_unit or []))
        requested = units_of(rsu, measure)
        used = sum(units_of(u, measure) for u in usus)
        rn = ccr.cc_request_number
        rtype = ccr.cc_request_type
        destination = destination_of(ccr)
        if rtype == C.E_CC_REQUEST_TYPE_EVENT_REQUEST:
            a = services.event(actor=self.actor, identifier=value, identifier_kind=kind, usage_type=usage_type,
                               external_id=external, origin="diameter", peer=peer, destination=destination,
                               units=requested or 1)
        elif rtype == C.E_CC_REQUEST_TYPE_INITIAL_REQUEST:
            a = services.start(actor=self.actor, identifier=value, identifier_kind=kind, usage_type=usage_type,
                               external_id=external, origin="diameter", peer=peer, destination=destination,
                               requested=requested, request_number=rn)
        else:
            session = services.find_session("diameter", external)
            if session is None and rtype == C.E_CC_REQUEST_TYPE_UPDATE_REQUEST:
                # A rating group that joins the session later opens its own sub-session.
                a = services.start(actor=self.actor, identifier=value, identifier_kind=kind, usage_type=usage_type,
                                   external_id=external, origin="diameter", peer=peer, destination=destination,
                                   requested=requested, request_number=rn)
            elif session is None:
                a = services.Answer(result_code=services.UNKNOWN_SESSION_ID, message="Unknown session")
            elif rtype == C.E_CC_REQUEST_TYPE_UPDATE_REQUEST:
                a = services.update(session, actor=self.actor, used=used, requested=requested, request_number=rn)
            else:
                a = services.terminate(session, actor=self.actor, used=used, request_number=rn,
                                       cause=f"CCR-T {ccr.termination_cause or ''}".strip())
        part = MultipleServicesCreditControl(rating_group=rg, result_code=a.result_code)
        if mscc is not None and mscc.service_identifier:
            part.service_identifier = list(mscc.service_identifier)
        if a.granted:
            part.granted_service_unit = granted_unit(a.granted, measure)
            if a.validity_time:
                part.validity_time = a.validity_time
        if a.final_unit:
            fui = FinalUnitIndication(final_unit_action=C.E_FINAL_UNIT_ACTION_TERMINATE)
            if a.final_unit == services.REDIRECT and a.redirect_url:
                fui = FinalUnitIndication(final_unit_action=C.E_FINAL_UNIT_ACTION_REDIRECT,
                                          redirect_server=RedirectServer(C.E_REDIRECT_ADDRESS_TYPE_URL, a.redirect_url))
            part.final_unit_indication = fui
        if rtype == C.E_CC_REQUEST_TYPE_TERMINATION_REQUEST and not a.ok and not mscc:
            return a.result_code, part
        return a.result_code, part


class CreditControlApplication(Application):
    """Diameter Credit-Control (application id 4), answered by a fixed pool of worker threads.

    Each worker keeps its database connection (a thread per request would open one each time).
    """

    def __init__(self, workers: int = 8):
        super().__init__(C.APP_DIAMETER_CREDIT_CONTROL_APPLICATION, is_auth_application=True)
        self.workers = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ccr")
        self.logic = CreditControl()
        self._send_lock = threading.Lock()

    def handle_request(self, message):
        self.pool.submit(self._work, message)

    def _work(self, message):
        try:
            close_old_connections()
            if isinstance(message, CreditControlRequest):
                answer = self.logic.answer(message, self.generate_answer(message), state_id=self.node.state_id)
            else:
                answer = self.generate_answer(message, result_code=C.E_RESULT_CODE_DIAMETER_COMMAND_UNSUPPORTED)
        except Exception:  # noqa: BLE001 - a request must get an answer
            log.exception("credit-control request failed")
            answer = self.generate_answer(message, result_code=C.E_RESULT_CODE_DIAMETER_UNABLE_TO_COMPLY)
        with self._send_lock:
            try:
                self.send_answer(answer)
            except Exception:  # noqa: BLE001 - the peer went away
                log.warning("could not send an answer", exc_info=True)

    def stop(self):
        from django.db import connections

        barrier = threading.Barrier(self.workers)

        def close():  # every worker closes its own database connection
            try:
                barrier.wait(5)
            except threading.BrokenBarrierError:
                pass
            connections.close_all()

        for _ in range(self.workers):
            self.pool.submit(close)
        self.pool.shutdown(wait=True, cancel_futures=False)
        super().stop()


class TarifaNode(Node):
    """A python-diameter node that admits the peers of the database (by Origin-Host and IP) at CER."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.app: CreditControlApplication | None = None

    def admit(self, record: DiameterPeer):
        peer = self.add_peer(f"aaa://{record.origin_host}", record.realm, None)
        peer.allowed_ip = record.ip_address
        if self.app is not None:
            for realm in {record.realm, self.realm_name}:
                peers = self._peer_routes.setdefault(realm, {}).setdefault(self.app, [])
                if peer not in peers:
                    peers.append(peer)
        return peer

    def receive_cer(self, conn, message):
        host = message.origin_host.decode().lower()
        record = DiameterPeer.objects.filter(origin_host=host, archived_at__isnull=True).first()
        close_old_connections()
        if record is None:
            self.peers.pop(host, None)
        else:
            peer = self.admit(record)
            ip = conn.ip if isinstance(conn.ip, str) else (conn.ip[0] if conn.ip else "")
            if ip and peer.allowed_ip and ip != peer.allowed_ip:
                log.warning("CER from %s at %s refused: the peer is configured at %s", host, ip, peer.allowed_ip)
                self.peers.pop(host, None)
        super().receive_cer(conn, message)
        if host in self.peers and self.peers[host].connection is not None:
            services.set_peer_state(host, DiameterPeer.State.CONNECTED)

    def remove_peer_connection(self, conn, disconnect_reason=None):
        host = (conn.host_identity or "").lower()
        if disconnect_reason is None:
            super().remove_peer_connection(conn)
        else:
            super().remove_peer_connection(conn, disconnect_reason)
        if host:
            try:
                services.set_peer_state(host, DiameterPeer.State.DISCONNECTED)
                close_old_connections()
            except Exception:  # noqa: BLE001 - the state is informative
                log.warning("could not record the state of %s", host, exc_info=True)


def build_node(*, host: str = "127.0.0.1", port: int = DEFAULT_PORT, workers: int = 8) -> TarifaNode:
    origin_host, realm = own_identity()
    node = TarifaNode(origin_host, realm, ip_addresses=[host], tcp_port=port, vendor_ids=[C.VENDOR_TGPP])
    node.product_name = "Tarifa"
    node.idle_timeout = 30
    app = CreditControlApplication(workers=workers)
    node.app = app
    records = list(DiameterPeer.objects.filter(archived_at__isnull=True))
    close_old_connections()
    peers = [node.add_peer(f"aaa://{r.origin_host}", r.realm, None) for r in records]
    for peer, record in zip(peers, records):
        peer.allowed_ip = record.ip_address
    node.add_application(app, peers, realms=[realm])
    return node


__all__ = ["build_node", "CreditControl", "ChargingSession"]
