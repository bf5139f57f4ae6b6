"""The one rule of access: may this subscriber come online now, and with which profile?

Both ways of answering use it: the RADIUS server (`server.RadiusServer.authenticate`, from its
in-memory snapshot) and the FreeRADIUS `rlm_rest` endpoints (`rest_api`, from the database).
The password itself is checked by whoever holds the request (the server here, FreeRADIUS there);
everything else is decided here, in this order: a known login with a password, the MAC binding,
the subscription's state (suspended: reject or the "pay first" profile, as the profile says), the
monthly traffic cap (reached: the capped speed or a reject, as the profile says), the simultaneous-use
limit.
"""

from dataclasses import dataclass

from .protocol import normalise_mac

UNKNOWN_LOGIN = "unknown login"
CAP_REACHED = "monthly traffic cap reached"


@dataclass(frozen=True, slots=True)
class Decision:
    accept: bool
    reason: str = ""  # why not (a reject), or a note on an accept ("pay-first profile (suspended)")
    pay_first: bool = False
    capped: bool = False  # accepted with the profile's capped speed

    @property
    def unknown(self) -> bool:
        return self.reason == UNKNOWN_LOGIN


def decide(sub, *, station: str, open_sessions: int) -> Decision:
    """`sub`: a `selectors.Subscriber` or None; `station`: the Calling-Station-Id; `open_sessions`:
    the login's open sessions now."""
    if sub is None or not sub.password:
        return Decision(False, UNKNOWN_LOGIN)
    if sub.mac and normalise_mac(station) != sub.mac:
        return Decision(False, f"MAC address {station or 'missing'} is not the bound {sub.mac}")
    pay_first = capped = False
    if sub.status == "active" and sub.capped and sub.profile.monthly_cap_mb:
        if sub.profile.when_capped == "disconnect":
            return Decision(False, CAP_REACHED)
        capped = True
    if sub.status == "suspended":
        if sub.profile.when_suspended != "pay_first":
            return Decision(False, "subscription suspended")
        pay_first = True
    elif sub.status != "active":
        return Decision(False, f"subscription {sub.status}")
    if sub.simultaneous_use and open_sessions >= sub.simultaneous_use:
        return Decision(False, f"simultaneous-use limit {sub.simultaneous_use} reached")
    if capped:
        return Decision(True, f"capped speed ({CAP_REACHED})", capped=True)
    return Decision(True, "pay-first profile (suspended)" if pay_first else "", pay_first)
