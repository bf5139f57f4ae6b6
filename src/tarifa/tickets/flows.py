"""The standard flows, as data: loaded by the demo (and by `tarifa tickets install-flows`).

Each flow: steps (code, name, options, fields, handlers) in order; forward transitions join
consecutive steps unless `forward` says otherwise; `backward` lists (from, to) moves that need
a resolution.
"""

from django.db import transaction

from . import services
from .models import TicketType

ACTIVATION = {
    "code": "activation", "name": "Internet activation", "customer_visible": True,
    "description": "From the request to an active internet service: survey, contract, port, installation; "
                   "the last step activates the requested tariff.",
    "steps": [
        {"code": "new", "name": "Request received", "sla_minutes": 240},
        {"code": "survey", "name": "Site survey", "sla_minutes": 2880,
         "fields": [{"name": "survey_date", "label": "Survey date", "kind": "date", "required": True},
                    {"name": "survey_notes", "label": "Survey notes", "kind": "text"}]},
        {"code": "contract", "name": "Contract signed", "sla_minutes": 2880,
         "fields": [{"name": "contract_number", "label": "Contract number", "kind": "text", "required": True}],
         "handlers": [{"phase": "pre", "kind": "require_account"}]},
        {"code": "port", "name": "Port reserved", "sla_minutes": 1440,
         "fields": [{"name": "port", "label": "Switch port", "kind": "text", "required": True}]},
        {"code": "installation", "name": "Installation", "sla_minutes": 4320, "roles": ["Field technicians"],
         "fields": [{"name": "cpe_serial", "label": "CPE serial number", "kind": "serial", "required": True},
                    {"name": "login", "label": "PPPoE login", "kind": "text", "required": True}]},
        {"code": "active", "name": "Service active", "final": True,
         "handlers": [{"phase": "post", "kind": "activate_subscription"},
                      {"phase": "post", "kind": "notify", "order": 20,
                       "parameters": {"to": "customer", "message": "Your internet service is active."}}]},
    ],
    "backward": [("contract", "survey"), ("port", "contract"), ("installation", "port")],
}

TARIFF_CHANGE = {
    "code": "tariff-change", "name": "Tariff change",
    "description": "The customer asks for another tariff; approved, it applies from the date given.",
    "steps": [
        {"code": "new", "name": "Request received", "sla_minutes": 480},
        {"code": "approval", "name": "Approval", "sla_minutes": 1440,
         "fields": [{"name": "effective", "label": "Effective from", "kind": "date"}]},
        {"code": "done", "name": "Tariff changed", "final": True,
         "handlers": [{"phase": "post", "kind": "change_tariff"}]},
    ],
    "backward": [("approval", "new")],
}

TERMINATION = {
    "code": "termination", "name": "Termination",
    "description": "End a service: retention call, equipment return, termination with final charges.",
    "steps": [
        {"code": "new", "name": "Request received", "sla_minutes": 480},
        {"code": "retention", "name": "Retention call", "sla_minutes": 1440,
         "fields": [{"name": "outcome", "label": "Call outcome", "kind": "choice", "required": True,
                     "choices": "leaves,stays"}]},
        {"code": "terminated", "name": "Terminated", "final": True,
         "handlers": [{"phase": "post", "kind": "terminate_subscription"}]},
    ],
    "backward": [("retention", "new")],
}

FAULT = {
    "code": "fault", "name": "Fault / repair", "customer_visible": True,
    "description": "Something does not work: diagnose, repair on site if needed, confirm with the customer.",
    "steps": [
        {"code": "new", "name": "Reported", "sla_minutes": 60},
        {"code": "diagnosis", "name": "Diagnosis", "sla_minutes": 240,
         "fields": [{"name": "cause", "label": "Cause found", "kind": "choice", "required": True,
                     "choices": "line,cpe,configuration,customer"}]},
        {"code": "repair", "name": "Repair", "sla_minutes": 1440, "roles": ["Field technicians"],
         "fields": [{"name": "work_done", "label": "Work done", "kind": "text", "required": True}]},
        {"code": "resolved", "name": "Resolved", "final": True,
         "handlers": [{"phase": "post", "kind": "notify",
                       "parameters": {"to": "customer", "message": "The fault you reported is repaired."}}]},
    ],
    "backward": [("repair", "diagnosis"), ("diagnosis", "new")],
    "forward": [("new", "diagnosis"), ("diagnosis", "repair"), ("diagnosis", "resolved"), ("repair", "resolved")],
}

STANDARD = [ACTIVATION, TARIFF_CHANGE, TERMINATION, FAULT]


@transaction.atomic
def install(flow: dict, *, actor, roles: dict | None = None) -> TicketType:
    """Create the ticket type `flow` describes (nothing when its code exists)."""
    existing = TicketType.objects.filter(code=flow["code"]).first()
    if existing is not None:
        return existing
    roles = roles or {}
    ttype = services.create_ticket_type(actor=actor, code=flow["code"], name=flow["name"],
                                        description=flow.get("description", ""),
                                        customer_visible=flow.get("customer_visible", False))
    steps = {}
    for i, spec in enumerate(flow["steps"]):
        step_roles = [roles[r] for r in spec.get("roles", []) if r in roles]
        steps[spec["code"]] = step = services.create_step(
            actor=actor, ticket_type=ttype, code=spec["code"], name=spec["name"], order=(i + 1) * 10,
            final=spec.get("final", False), automatic=spec.get("automatic", False), roles=step_roles,
            sla_minutes=spec.get("sla_minutes"))
        for j, f in enumerate(spec.get("fields", [])):
            services.add_field(actor=actor, step=step, order=(j + 1) * 10, **f)
        for h in spec.get("handlers", []):
            services.add_handler(actor=actor, step=step, kind=h["kind"], phase=h["phase"],
                                 parameters=h.get("parameters", {}), order=h.get("order", 10))
    codes = [s["code"] for s in flow["steps"]]
    forward = flow.get("forward") or list(zip(codes, codes[1:]))
    for a, b in forward:
        services.create_transition(actor=actor, ticket_type=ttype, from_step=steps[a], to_step=steps[b])
    for a, b in flow.get("backward", []):
        services.create_transition(actor=actor, ticket_type=ttype, from_step=steps[a], to_step=steps[b],
                                   direction="backward", requires_resolution=True)
    return ttype
