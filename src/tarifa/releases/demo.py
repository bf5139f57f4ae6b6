"""Demo: number ranges for the demo branches and, on a centre or a standalone node, release 1 of the demo
reference data (a demo branch gets its release from its centre)."""

from tarifa.federation import selectors as federation

from . import services
from .models import NumberRange, Release


def load(*, actor) -> dict:
    made = []
    for kind, first, last, branch in [("phone_number", "700000000", "700999999", "B1"),
                                      ("phone_number", "701000000", "701999999", "B2"),
                                      ("ip_address", "10.1.0.0", "10.1.255.255", "B1")]:
        if not NumberRange.objects.filter(kind=kind, first=first).exists():
            services.create_number_range(actor=actor, kind=kind, first=first, last=last, assigned_branch=branch)
            made.append(first)
    published = None
    if federation.role() != "branch" and not Release.objects.exists():
        published = services.publish(actor=actor, note="demo reference data").number
    return {"number_ranges": made, "release": published}
