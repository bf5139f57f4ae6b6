"""Demo federation registry: a centre and a second branch this node could talk to (addresses on loopback,
keys generated now). On a standalone installation nothing is sent to them. A federated node (a centre or a
branch, e.g. in `tarifa federation demo`) gets no made-up peers: its registry holds the real ones."""

from . import selectors, services, signatures
from .models import Node


def load(*, actor) -> dict:
    if selectors.enabled():
        return {"nodes": [], "skipped": "federated node: its registry is set up with its real peers"}
    made = []
    for code, name, role, port in [("CTR", "Central node", "centre", 8100), ("B2", "Branch 2", "branch", 8102)]:
        if Node.objects.filter(code=code).exists():
            continue
        node = services.create_node(actor=actor, code=code, name=name, role=role, base_url=f"http://127.0.0.1:{port}")
        key = signatures.generate_private_key()
        services.add_node_key(node, actor=actor, key_id=f"{code}.demo",
                              public_key=signatures.public_to_text(key.public_key()))
        made.append(code)
    return {"nodes": made}
