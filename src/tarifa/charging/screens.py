"""Operator screens of online charging: sessions (open ones with their reservations, per account;
history and detail), reservations, Diameter peers, rating groups."""

from django.utils.translation import gettext_lazy as _

from tarifa.rating.units import format_usage
from tarifa.web.registry import ModelScreens, register

from . import services
from .forms import DiameterPeerForm, RatingGroupForm
from .models import CallMatch, ChargingSession, DiameterPeer, RatingGroup, Reservation

AREA = "Usage"


def _usage(field):
    return lambda s: format_usage(getattr(s, field), s.usage_type)


def _matched_cdr(session) -> str:
    """The CDR a session was matched to (semi-online), as the switch named it."""
    match = CallMatch.objects.filter(session=session).first()
    if match is None:
        return ""
    return f"CDR {match.source}/{match.record_id}"


def _session_context(request, session):
    def text(units):
        return format_usage(units, session.usage_type)

    return {
        "requests": [(q, text(q.requested_units), text(q.used_units), text(q.granted_units))
                     for q in session.requests.order_by("request_number", "created_at")],
        "reservations": [(r, text(r.units), text(r.free_units))
                         for r in session.reservations.select_related("hold").order_by("created_at")],
    }


register(ModelScreens(
    model=ChargingSession, area=AREA,
    columns=["started_at", "subject", "usage_type", "kind", "state", "origin", "billing_account", "destination",
             "used_units", "charged", "currency", "final_unit"],
    filterset_fields=["state", "origin", "usage_type", "kind", "billing_account", "subscription"],
    search_fields=["subject", "external_id", "destination", "billing_account__number", "subscription__number"],
    ordering=["-started_at"], menu_label=_("Charging sessions"),
    detail_fields=["subscription", "billing_account", "kind", "usage_type", "state", "origin", "external_id", "peer",
                   "subject", "destination", "started_at", "ended_at", "used_units", "rated_units", "free_units",
                   "bundle", "charged", "currency", "final_unit", "termination_cause", "tenant", "category",
                   "rating_plan", "last_request_number", "matched_usage"],
    detail_template="charging/session_detail.html", detail_context=_session_context,
    formats={"used_units": _usage("used_units"), "rated_units": _usage("rated_units"),
             "free_units": _usage("free_units"), "matched_usage": _matched_cdr},
    queryset=lambda request: ChargingSession.objects.select_related("billing_account", "subscription"),
))

register(ModelScreens(
    model=Reservation, area=AREA,
    columns=["created_at", "session", "billing_account", "units", "free_units", "amount", "currency", "state",
             "expires_at"],
    filterset_fields=["state", "billing_account"], search_fields=["billing_account__number", "session__subject"],
    ordering=["-created_at"], menu_label=_("Reservations (online charging)"),
    formats={"units": lambda r: format_usage(r.units, r.session.usage_type),
             "free_units": lambda r: format_usage(r.free_units, r.session.usage_type)},
    queryset=lambda request: Reservation.objects.select_related("session", "billing_account"),
))

register(ModelScreens(
    model=CallMatch, area=AREA,
    columns=["matched_at", "billing_account", "session", "record_id", "online_units", "offline_units",
             "online_cost", "offline_cost", "difference", "currency", "correction"],
    filterset_fields=["billing_account", "session", "batch"],
    search_fields=["billing_account__number", "record_id", "session__subject", "session__external_id"],
    ordering=["-matched_at"], menu_label=_("Semi-online matches (CDR ↔ online)"),
    detail_fields=["session", "usage_record", "batch", "source", "record_id", "billing_account", "online_units",
                   "offline_units", "online_cost", "offline_cost", "difference", "currency", "correction",
                   "session_was_open", "matched_at"],
    formats={"online_units": lambda m: format_usage(m.online_units, m.session.usage_type),
             "offline_units": lambda m: format_usage(m.offline_units, m.session.usage_type)},
    queryset=lambda request: CallMatch.objects.select_related("session", "billing_account", "correction"),
))

register(ModelScreens(
    model=DiameterPeer, area=AREA, columns=["origin_host", "realm", "ip_address", "state", "state_changed_at"],
    form_class=DiameterPeerForm, create=services.create_peer, update=services.update_peer,
    archive=services.archive_peer, search_fields=["origin_host", "realm", "ip_address"], ordering=["origin_host"],
    form_sample=lambda view, obj, user: ({"origin_host": "suite-peer.example.net", "realm": "example.net",
                                          "ip_address": "192.0.2.10"} if view == "add" else {}),
))

register(ModelScreens(
    model=RatingGroup, area=AREA, columns=["kind", "number", "usage_type", "note"],
    form_class=RatingGroupForm, create=services.create_rating_group, update=services.update_rating_group,
    archive=services.archive_rating_group, filterset_fields=["kind", "usage_type"], search_fields=["note"],
    ordering=["kind", "number"], menu_label=_("Rating groups (Diameter)"),
    form_sample=lambda view, obj, user: ({"kind": "rating_group", "number": "4242", "usage_type": "data"}
                                         if view == "add" else {}),
))
