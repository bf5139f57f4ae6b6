from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from tarifa.web.dashboard import widget
from tarifa.web.registry import Action, ModelScreens, register

from . import selectors, services
from .forms import EndKeyForm, NodeForm, NodeKeyForm, ResumeForm
from .models import Node


def _sample_key(obj, user):
    from . import signatures

    key = signatures.generate_private_key()
    return {"key_id": f"{obj.code}.form-{key.public_key().public_bytes_raw().hex()[:8]}",
            "public_key": signatures.public_to_text(key.public_key())}


def _resume(node, *, actor, kind=""):
    services.resume_stream(node, actor=actor, kind=kind or None)
    return node


def _context(request, node):
    return {"streams": selectors.streams_of(node), "keys": node.keys.order_by("valid_from")}


register(ModelScreens(
    model=Node, area="Administration", columns=["code", "name", "role", "base_url"],
    form_class=NodeForm, create=services.create_node, update=services.update_node, archive=services.archive_node,
    ordering=["code"], search_fields=["code", "name"], filterset_fields=["role"],
    detail_template="federation/node_detail.html", detail_context=_context,
    form_sample=lambda view, obj, user: {"code": "FS1", "name": "Form branch", "role": "branch",
                                         "base_url": "https://fs1.example.net"} if view == "add" else {},
    actions=[
        Action("add-key", _("Register a public key"), "federation.add_nodekey",
               lambda n, *, actor, **data: services.add_node_key(n, actor=actor, **data),
               form_class=NodeKeyForm, form_sample=_sample_key, available=lambda n: n.archived_at is None),
        Action("end-key", _("End a key's validity"), "federation.add_nodekey",
               lambda n, *, actor, **data: services.end_node_key(n, actor=actor, **data),
               form_class=EndKeyForm, available=lambda n: n.keys.filter(valid_until__isnull=True).exists(),
               form_sample=lambda n, user: {"key_id": n.keys.filter(valid_until__isnull=True).first().key_id}),
        Action("resume", _("Resume stopped streams"), "federation.resume_stream",
               _resume,
               form_class=ResumeForm,
               confirm=_("Resume only after fixing the cause shown (the peer upgraded, a restored database "
                         "reconciled): refused messages are sent again from the receiver's next expected number.")),
    ],
))


@widget("federation.view_node")
def federation_problems(request):
    """Stopped streams, refused messages and unreachable peers (selectors.problems): shown only on a node
    that takes part in a federation."""
    if not selectors.enabled():
        return {"label": _("Federation"), "value": _("standalone"), "url": reverse("federation:node_list")}
    found = selectors.problems()
    return {"label": _("Federation problems"), "value": len(found), "alert": bool(found),
            "detail": "; ".join(f"{p['stream']}: {p['code']}" for p in found[:3]),
            "url": reverse("federation:node_list")}
