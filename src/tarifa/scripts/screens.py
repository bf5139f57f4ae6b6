import datetime as dt

from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.kernel.clock import now
from tarifa.web.dashboard import widget

from tarifa.web.registry import Action, ModelScreens, register

from . import services
from .forms import ScriptForm, ScriptTestForm
from .models import Script, ScriptRun, ScriptVersion, milliseconds

AREA = "Administration"


def lua_text(value) -> str:
    """A value as a script writes it: "HQ-S0000001", 12, true, {a = 1}, {1, 2}."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "{" + ", ".join(lua_text(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {lua_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _run_context(request, run):
    calls = []
    for call in run.calls or []:
        args = [lua_text(a) for a in call.get("args") or []]
        kwargs = call.get("kwargs") or {}
        text = ", ".join(args) if not kwargs else lua_text(kwargs)
        calls.append({"function": call.get("function"), "arguments": text, "ok": call.get("ok"),
                      "error": call.get("error", ""), "ms": call.get("ms")})
    value = run.value
    return {"calls": calls, "duration": milliseconds(run.duration_ms), "cpu": milliseconds(run.cpu_ms),
            "value_is_structure": isinstance(value, (dict, list)) and bool(value),
            "value_text": lua_text(value) if value not in (None, {}, []) else "{}"}


def _sample_context(*, context=None, customer="", subscription="") -> dict:
    from tarifa.crm.models import Customer
    from tarifa.kernel.errors import ValidationFailed
    from tarifa.subscriptions.models import Subscription

    context = dict(context or {})
    ticket = dict(context.get("ticket") or {})
    if subscription:
        sub = Subscription.objects.select_related("billing_account__customer").filter(number=subscription).first()
        if sub is None:
            raise ValidationFailed(f"No subscription {subscription}.", fields={"subscription": ["Not found."]})
        context["subscription"] = sub.number
        ticket.setdefault("subscription", sub.number)
        ticket.setdefault("account", sub.billing_account.number)
        customer = customer or sub.billing_account.customer.number
    if customer:
        found = Customer.objects.filter(number=customer).first()
        if found is None:
            raise ValidationFailed(f"No customer {customer}.", fields={"customer": ["Not found."]})
        context["customer"] = found.number
        ticket.setdefault("customer", found.number)
        account = found.billing_accounts.order_by("number").first()
        if account is not None:
            ticket.setdefault("account", account.number)
    if ticket:
        context["ticket"] = ticket
    return context


def _test(script, *, actor, context=None, customer="", subscription=""):
    return services.test_script(script, actor=actor,
                                context=_sample_context(context=context, customer=customer, subscription=subscription))


def _test_version(version, *, actor, context=None, customer="", subscription=""):
    return services.test_script(version.script, actor=actor, version=version,
                                context=_sample_context(context=context, customer=customer, subscription=subscription))


def _script_context(request, script):
    return {"versions": script.versions.order_by("-number")[:20],
            "runs": script.runs.select_related("version").order_by("-started_at")[:20]}


def _test_sample(obj, user):
    return {"context": '{"ticket": {"min_balance": "5"}}', "customer": "", "subscription": ""}


def _form_sample(view, obj, user):
    if view == "add":
        return {"kind": "handler", "schedule": "", "source": "return {}"}
    return {"source": "return {ok = true}"}


register(ModelScreens(
    model=Script, area=AREA, columns=["code", "name", "kind", "schedule", "active", "current_version__number",
                                      "updated_at"],
    form_class=ScriptForm, create=services.create_script, update=services.update_script,
    filterset_fields=["kind", "active"], search_fields=["code", "name", "description"], ordering=["code"],
    detail_fields=["code", "name", "description", "kind", "schedule", "run_as", "active", "current_version",
                   "last_scheduled_at"],
    detail_template="scripts/script_detail.html", detail_context=_script_context, form_sample=_form_sample,
    actions=[Action("test", _("Test (dry run)"), "scripts.test_script", _test, form_class=ScriptTestForm,
                    available=lambda script: script.current_version_id is not None, form_sample=_test_sample)],
))

register(ModelScreens(
    model=ScriptVersion, area=AREA, columns=["script__code", "number", "created_at", "created_by", "note"],
    filterset_fields=["script"], search_fields=["script__code", "note", "source"], ordering=["script__code", "-number"],
    detail_fields=["script", "number", "created_at", "created_by", "note"],
    detail_template="scripts/scriptversion_detail.html",
    actions=[
        Action("restore", _("Restore"), "scripts.change_script",
               lambda version, *, actor: services.restore_version(version, actor=actor),
               available=lambda version: version.script.current_version_id != version.pk,
               confirm=_("The script runs this version's source from now on, saved as a new version.")),
        Action("test", _("Test this version"), "scripts.test_script", _test_version, form_class=ScriptTestForm,
               form_sample=_test_sample),
    ],
))

register(ModelScreens(
    model=ScriptRun, area=AREA,
    columns=["started_at", "script__code", "version__number", "purpose", "actor", "dry_run", "outcome",
             "duration_ms"],
    filterset_fields=["script", "outcome", "dry_run"], search_fields=["script__code", "purpose", "actor", "error"],
    ordering=["-started_at"], detail_template="scripts/scriptrun_detail.html", detail_context=_run_context,
    formats={"duration_ms": lambda run: milliseconds(run.duration_ms), "cpu_ms": lambda run: milliseconds(run.cpu_ms)},
))


@widget("scripts.view_scriptrun")
def failed_runs(request):
    """Runs that failed or were killed in the last 24 hours (dry runs left out): a handler or a
    scheduled task the operator should look at."""
    count = (ScriptRun.objects.filter(started_at__gte=now() - dt.timedelta(hours=24), dry_run=False)
             .exclude(outcome=ScriptRun.Outcome.OK).count())
    return {"label": _("Script runs failed (24 h)"), "value": count, "alert": count > 0,
            "url": reverse("scripts:scriptrun_list") + "?dry_run=false"}
