"""Portal sessions, apart from staff sessions.

A portal session lives in its own cookie (`tarifa_portal`, HttpOnly, SameSite=Lax, Secure when
TARIFA_SECURE_COOKIES, path /portal/) and its own session record: signing in to the portal never
signs anyone in to the operator's screens, and a staff session never opens the portal (except
the read-only "see what the customer sees", which needs both the staff session and the
permission). A session remembers a hash of the password it was opened with: a changed or reset
password ends every other session of that user.
"""

import hashlib
import hmac

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.utils.crypto import constant_time_compare

from tarifa.crm.models import Customer

from . import services
from .models import PortalUser

COOKIE = "tarifa_portal"
COOKIE_PATH = "/portal/"
USER_KEY = "portal_user"
HASH_KEY = "portal_hash"
VIEW_AS_KEY = "portal_view_as"
STAFF_KEY = "portal_staff"
LANG_KEY = "portal_lang"


def _password_hash(user: PortalUser) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"portal-session:{user.password}".encode(),
                    hashlib.sha256).hexdigest()


def load(request) -> SessionStore:
    store = SessionStore(session_key=request.COOKIES.get(COOKIE))
    request.portal_session = store
    return store


def user_of(request) -> PortalUser | None:
    """The portal user of this request's portal session (or the read-only stand-in of a staff
    member viewing a customer's portal), or None."""
    store = request.portal_session
    if store.get(VIEW_AS_KEY):
        staff = getattr(request, "user", None)
        if (staff is not None and staff.is_authenticated and str(staff.pk) == store.get(STAFF_KEY)
                and staff.has_perm("portal.view_as_customer")):
            customer = Customer.objects.filter(pk=store[VIEW_AS_KEY]).first()
            if customer is not None:
                stand_in = PortalUser(customer=customer, login=f"staff:{staff.get_username()}",
                                      role=PortalUser.Role.ADMINISTRATOR, language="en")
                stand_in.read_only = True
                return stand_in
        store.flush()
        return None
    pk = store.get(USER_KEY)
    if not pk:
        return None
    user = PortalUser.objects.select_related("customer").filter(pk=pk, archived_at__isnull=True).first()
    if user is None or not constant_time_compare(store.get(HASH_KEY, ""), _password_hash(user)):
        store.flush()
        return None
    return user


def login(request, user: PortalUser) -> None:
    store = request.portal_session
    lang = store.get(LANG_KEY)
    store.flush()  # a new session key: no fixation
    store[USER_KEY] = str(user.pk)
    store[HASH_KEY] = _password_hash(user)
    if lang:
        store[LANG_KEY] = lang


def logout(request) -> None:
    user = user_of(request)
    if user is not None:
        services.logout(user)
    request.portal_session.flush()


def start_view_as(request, customer: Customer) -> None:
    store = request.portal_session
    store.flush()
    store[VIEW_AS_KEY] = str(customer.pk)
    store[STAFF_KEY] = str(request.user.pk)


def save(request, response):
    store = getattr(request, "portal_session", None)
    if store is None:
        return response
    if store.is_empty():
        if COOKIE in request.COOKIES:
            response.delete_cookie(COOKIE, path=COOKIE_PATH, samesite="Lax")
        return response
    if store.modified or store.session_key is None:
        store.save()
    if store.modified or request.COOKIES.get(COOKIE) != store.session_key:
        response.set_cookie(COOKIE, store.session_key, max_age=settings.SESSION_COOKIE_AGE, path=COOKIE_PATH,
                            secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite="Lax")
    return response
