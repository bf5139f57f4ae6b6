"""Operator screens of network access: NAS, access profiles, per-subscription settings, online
sessions, session history and the authentication log (list and detail; aaa2 adds disconnect
buttons, graphs and the CoA log)."""

from django.utils.translation import gettext_lazy as _

from tarifa.kernel.units import format_bytes, format_seconds
from tarifa.web.registry import Action, ModelScreens, register

from . import services
from .forms import AccessSettingsForm, NasForm, ProfileForm, ReasonForm
from .coa_screens import DISCONNECT  # noqa: F401 — and the CoA side's screens: CoA/DM log, reconciliation, NAS health
from .models import AccessSettings, AuthAttempt, FinishedSession, Nas, Profile, Session

AREA = "Network"

USAGE_FORMATS = {"bytes_in": lambda s: format_bytes(s.bytes_in), "bytes_out": lambda s: format_bytes(s.bytes_out),
                 "session_time": lambda s: format_seconds(s.session_time)}


def _nas_sample(view, obj, user):
    if view == "add":
        return {"ip_address": "198.51.100.77", "secret": "suite-secret-1"}
    return {}


register(ModelScreens(
    model=Nas, area=AREA, menu_label=_("NAS"),
    columns=["name", "ip_address", "type", "coa_port", "active", "last_seen"],
    detail_fields=["name", "ip_address", "type", "coa_port", "active", "last_seen", "description", "created_at"],
    form_class=NasForm, create=services.create_nas, update=services.update_nas,
    filterset_fields=["type", "active"], search_fields=["name", "ip_address"], ordering=["name"],
    form_sample=_nas_sample,
    actions=[
        Action("deactivate", _("Deactivate"), "aaa.change_nas",
               lambda nas, *, actor, reason="": services.deactivate_nas(nas, actor=actor, reason=reason),
               form_class=ReasonForm, available=lambda nas: nas.active, danger=True,
               confirm=_("The NAS's RADIUS requests are ignored from now on; its subscribers cannot log in "
                         "through it.")),
        Action("close-sessions", _("Close open sessions"), "aaa.change_nas",
               lambda nas, *, actor, reason="": (services.close_nas_sessions(nas, actor=actor, reason=reason), nas)[1],
               form_class=ReasonForm, danger=True,
               confirm=_("Every open session of this NAS is closed in Tarifa now (its usage kept), as an "
                         "Accounting-On would. Nothing is sent to the NAS.")),
    ],
))


def _free_tariff():
    """form_sample of a new profile: a live tariff without one."""
    from tarifa.catalog.models import Tariff

    tariff = Tariff.objects.filter(archived_at__isnull=True, aaa_profile__isnull=True).order_by("code").first()
    return {"tariff": str(tariff.pk)} if tariff else {}


register(ModelScreens(
    model=Profile, area=AREA, menu_label=_("Access profiles"),
    columns=["name", "tariff", "rate_down_kbps", "rate_up_kbps", "ip_pool", "simultaneous_use", "when_suspended",
             "monthly_cap_mb"],
    form_class=ProfileForm, create=services.create_profile, update=services.update_profile,
    filterset_fields=["when_suspended"], search_fields=["name", "tariff__code"], ordering=["name"],
    form_sample=lambda view, obj, user: _free_tariff() if view == "add" else {},
    sample=lambda view: Profile.objects.filter(tariff__isnull=False).order_by("pk").first(),
))


def _settings_sample(view, obj, user):
    if view != "add":
        return {}
    from tarifa.subscriptions.models import Subscription

    sub = (Subscription.objects.filter(service__service_type__category="internet", aaa_settings__isnull=True)
           .exclude(status="terminated").order_by("number").first())
    return {"subscription": str(sub.pk)} if sub else {}


register(ModelScreens(
    model=AccessSettings, area=AREA, menu_label=_("Subscribers' access settings"),
    columns=["subscription", "ip_pool", "simultaneous_use"],
    form_class=AccessSettingsForm, create=services.set_access_settings, update=services.update_access_settings,
    search_fields=["subscription__number", "subscription__login"], ordering=["subscription__number"],
    form_sample=_settings_sample,
))


register(ModelScreens(
    model=Session, area=AREA, menu_label=_("Online sessions"),
    columns=["login", "nas", "framed_ip", "calling_station_id", "started_at", "updated_at", "session_time",
             "bytes_in", "bytes_out"],
    filterset_fields=["nas"], search_fields=["login", "acct_session_id", "calling_station_id"],
    ordering=["-started_at"], formats=USAGE_FORMATS, actions=[DISCONNECT],
))


register(ModelScreens(
    model=FinishedSession, area=AREA, menu_label=_("Session history"),
    columns=["login", "nas", "framed_ip", "started_at", "stopped_at", "session_time", "bytes_in", "bytes_out",
             "stop_reason"],
    filterset_fields=["nas", "stop_reason"], search_fields=["login", "acct_session_id", "calling_station_id"],
    ordering=["-stopped_at"], formats=USAGE_FORMATS,
))


register(ModelScreens(
    model=AuthAttempt, area=AREA, menu_label=_("Authentication log"),
    columns=["at", "outcome", "login", "reason", "nas", "nas_ip", "calling_station_id", "method"],
    filterset_fields=["outcome", "nas"], search_fields=["login", "reason", "calling_station_id"],
    ordering=["-at"],
))
