"""Subscription events → the network (CoA/Disconnect to the NAS of every open session).

A handler only enqueues `aaa.bring_in_step` (queue "aaa") in the event's transaction: the packets
go out from that job, so a slow or dead NAS never holds up the events queue, and the job decides
from the subscription as it is then (`coa_services.plan`), whatever the event said.
"""

from tarifa.kernel.events import subscribe

REASONS = {
    "subscription.suspended": "suspended",
    "subscription.resumed": "resumed",
    "subscription.terminated": "terminated",
    "subscription.tariff_changed": "tariff_changed",
}


def _enqueue(event):
    from .tasks import bring_in_step

    subscription = (event.payload or {}).get("subscription") or event.object_id
    if subscription:
        bring_in_step.defer(subscription_id=str(subscription), reason=REASONS[event.name])


for _name in REASONS:
    subscribe(_name)(_enqueue)
