"""Stored identifiers in their one notation (issue 10, item 16): E.164 phone numbers, MAC
addresses as aa:bb:cc:00:11:22, ICCID and IMSI digits only, canonical IP addresses.

Refuses nothing silently: a value that cannot be read (a national number with no
TARIFA_DEFAULT_COUNTRY_CODE set, letters, …) or whose normal form another live
subscription already holds is left as it is, printed, and recorded as an audit event
`identifier_not_normalised` on its subscription (its history says why). Each value changed
is an audit event `normalise_identifier` (before, after); the identifier history
(IdentifierAssignment) follows. Values already in their notation are not read at all.
"""

from django.conf import settings
from django.db import migrations

# Values in these shapes are already in their notation (checked in SQL, so a large base
# reads only the few others).
CANONICAL = {
    "phone_number": r"^\+[1-9][0-9]{1,14}$",
    "mac_address": r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$",
    "iccid": r"^[0-9]+$",
    "imsi": r"^[0-9]+$",
    "ip_address": r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$",
}
ACTOR = "system:migration"


def forwards(apps, schema_editor):
    from tarifa.subscriptions.identifiers import BadIdentifier, normalise

    Subscription = apps.get_model("subscriptions", "Subscription")
    Assignment = apps.get_model("subscriptions", "IdentifierAssignment")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    country_code = getattr(settings, "TARIFA_DEFAULT_COUNTRY_CODE", "")
    changed = left = 0
    for kind, shape in CANONICAL.items():
        odd = (Subscription.objects.exclude(**{kind: ""}).exclude(**{f"{kind}__regex": shape})
               .order_by("number").only("id", "number", "status", kind))
        for sub in odd.iterator():
            old = getattr(sub, kind)
            problem = None
            try:
                new = normalise(kind, old, country_code=country_code)
            except BadIdentifier as err:
                new, problem = old, f"{kind} {old!r} left as it is: {err}"
            if problem is None and new == old:
                continue
            if problem is None and sub.status != "terminated":
                other = (Subscription.objects.exclude(status="terminated").exclude(pk=sub.pk)
                         .filter(**{kind: new}).values_list("number", flat=True).first())
                if other:
                    problem = f"{kind} {old!r} left as it is: its normal form {new} is {other}'s"
            label = f"{sub.number} {old}"[:200]
            if problem:
                left += 1
                print(f"\n  {sub.number}: {problem}", end="")
                AuditEvent.objects.create(object_type="subscriptions.subscription", object_id=str(sub.pk),
                                          object_repr=label, action="identifier_not_normalised", actor_label=ACTOR,
                                          channel="cli", changes={kind: [old, old]}, message=problem)
                continue
            Subscription.objects.filter(pk=sub.pk).update(**{kind: new})
            Assignment.objects.filter(subscription_id=sub.pk, kind=kind, value=old).update(value=new)
            AuditEvent.objects.create(object_type="subscriptions.subscription", object_id=str(sub.pk),
                                      object_repr=label, action="normalise_identifier", actor_label=ACTOR,
                                      channel="cli", changes={kind: [old, new]},
                                      message=f"{kind} written in its one notation: {old} → {new}")
            changed += 1
    if changed or left:
        print(f"\n  identifiers: {changed} normalised, {left} left as they were (see their history)", end="")


class Migration(migrations.Migration):

    dependencies = [
        ("subscriptions", "0004_reversed_fee_period_parameters"),
        ("audit", "0002_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
