"""The generic permission suite: every registered screen, page and API endpoint, three ways.

For each one (computed from the registry at collection time, so a new app's screens and
endpoints are covered the moment they are registered):
- anonymous: the UI redirects to the login page, the API answers 401 in the error format;
- a user holding every permission of the app *except* the required one: 403;
- a user holding exactly the required permission: 200.

Records for detail URLs come from the demo data (`tarifa.web.demo_loader.load_demo`),
loaded once for the module inside a transaction that is rolled back at the end. A
registered model without any demo record fails here: extend your app's `demo.py`.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.urls import NoReverseMatch, reverse

import tarifa.urls  # noqa: F401  (importing the URLconf registers every app's pages and endpoints)
from tarifa.web import api, registry

ANONYMOUS, WITHOUT, WITH = "anonymous", "without-permission", "with-permission"
ANY_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class Case:
    id: str
    permission: str | None  # None: any logged-in user may open it
    url: Callable  # url(obj) -> str; obj is None unless `model` is set
    model: type | None = None
    pick: Callable | None = None  # pick(queryset) -> obj, default: the first
    api: bool = False


def _url_exists(name, args=()) -> bool:
    try:
        reverse(name, args=args)
        return True
    except NoReverseMatch:
        return False


def _not_archived(qs):
    if hasattr(qs.model, "archived_at"):
        qs = qs.filter(archived_at__isnull=True)
    return qs.first()


def _editable(screens):
    def pick(qs):
        if hasattr(qs.model, "archived_at"):
            qs = qs.filter(archived_at__isnull=True)
        for obj in qs.iterator(chunk_size=100):
            if screens.editable is None or screens.editable(obj):
                return obj
        return None

    return pick


def _available(action):
    def pick(qs):
        for obj in qs.iterator(chunk_size=100):
            if action.available is None or action.available(obj):
                return obj
        return None

    return pick


def _sampled(screens, view, default):
    if screens.sample is None:
        return default

    def pick(qs):  # the screen's sample, or the default where it gives none for this view
        obj = screens.sample(view)
        if obj is None:
            obj = default(qs) if default else qs.first()
        return obj

    return pick


def screen_cases():
    for s in registry.all_screens():
        yield Case(s.url_name("list"), s.perm("view"), lambda obj, s=s: s.url("list"))
        yield Case(s.url_name("detail"), s.perm("view"), lambda obj, s=s: s.url("detail", obj), s.model,
                   _sampled(s, "detail", None))
        if _url_exists(s.url_name("add")):
            yield Case(s.url_name("add"), s.perm("add"), lambda obj, s=s: s.url("add"))
        if _url_exists(s.url_name("edit"), [ANY_UUID]):
            yield Case(s.url_name("edit"), s.perm("change"), lambda obj, s=s: s.url("edit", obj), s.model,
                       _sampled(s, "edit", _editable(s)))
        if _url_exists(s.url_name("archive"), [ANY_UUID]):
            yield Case(s.url_name("archive"), s.perm("delete"), lambda obj, s=s: s.url("archive", obj), s.model,
                       _sampled(s, "archive", _not_archived))
        if _url_exists(s.url_name("import")):
            yield Case(s.url_name("import"), s.perm("add"), lambda obj, s=s: s.url("import"))
        for a in s.actions:
            yield Case(f"{s.url_name('action')}:{a.name}", a.permission,
                       lambda obj, s=s, a=a: reverse(s.url_name("action"), args=[obj.pk, a.name]), s.model,
                       _sampled(s, a.name, _available(a)))
    for page in registry.all_pages():
        yield Case(page.name, page.permission, lambda obj, page=page: reverse(page.name))


def api_cases():
    for _prefix, viewset, basename in api.router.registry:
        model = viewset.queryset.model
        view_perm = f"{model._meta.app_label}.view_{model._meta.model_name}"
        yield Case(f"api:{basename}-list", view_perm, lambda obj, b=basename: reverse(f"api:{b}-list"), api=True)
        yield Case(f"api:{basename}-detail", view_perm,
                   lambda obj, b=basename: reverse(f"api:{b}-detail", args=[obj.pk]), model, api=True)
        for act in viewset.get_extra_actions():
            if "get" not in act.mapping:
                continue
            perm = act.kwargs.get("required_permission") or view_perm
            name = f"api:{basename}-{act.url_name}"
            if act.detail:
                yield Case(name, perm, lambda obj, n=name: reverse(n, args=[obj.pk]), model, api=True)
            else:
                yield Case(name, perm, lambda obj, n=name: reverse(n), api=True)
    for route, view, name, perm in api.extra_endpoints:
        view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
        if view_class is None or not hasattr(view_class, "get"):
            continue
        sample = api.endpoint_samples.get(name)
        if sample is None and re.search(r"<[^>]+>", route):
            raise AssertionError(f"API endpoint {name!r} ({route}) takes URL arguments: register it with "
                                 f"sample=<callable returning its URL kwargs> so the permission suite can open it")
        yield Case(f"api:{name}", perm,
                   lambda obj, n=name, sample=sample: reverse(f"api:{n}", kwargs=sample() if sample else None),
                   api=True)


CASES = [*screen_cases(), *api_cases()]
assert len({c.id for c in CASES}) == len(CASES), "duplicate permission-suite case ids"


def test_the_registry_was_read_at_collection_time():
    ids = {c.id for c in CASES}
    assert {"identity:user_list", "identity:user_detail", "identity:role_add", "web:jobs",
            "api:user-list", "api:auditevent-detail", "api:permissions"} <= ids


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo data set and the suite's users, made once; every test of this module runs
    in a savepoint inside this transaction, which is rolled back at the end."""
    from django.contrib.auth import get_user_model

    from tarifa.web.demo_loader import load_demo

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            load_demo(actor="demo")
            users = make_suite_users()
            superuser = get_user_model().objects.create(username="suite-superuser", is_superuser=True)
            yield {"users": users, "superuser": superuser, "sessions": make_sessions([*users.values(), superuser]),
                   "objects": {}}
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def make_suite_users() -> dict:
    """{(WITH, perm): user holding exactly perm, (WITHOUT, perm): user holding every other
    permission of perm's app, None: a user holding none}, for every permission the cases require.

    Written in bulk rather than through identity's services: they are the suite's
    scaffolding, not the subject, and several hundred users and roles go into each run.
    """
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Permission

    role_model, user_model = apps.get_model("identity", "Role"), get_user_model()
    labels = [c.label for c in apps.get_app_configs() if c.name.startswith("tarifa.")]
    every = {f"{p.content_type.app_label}.{p.codename}": p
             for p in Permission.objects.select_related("content_type").filter(content_type__app_label__in=labels)}
    required = sorted({c.permission for c in CASES if c.permission and c.permission in every})
    by_app: dict[str, list] = {}
    for name, p in every.items():
        by_app.setdefault(name.split(".")[0], []).append((name, p))
    holdings = {None: []}
    for perm in required:
        holdings[(WITH, perm)] = [every[perm]]
        # Every other permission of the same app: a screen that checks a sibling permission
        # (view instead of change, change instead of an action's own) is caught; checking
        # another app's permission fails the WITH case anyway.
        holdings[(WITHOUT, perm)] = [p for name, p in by_app[perm.split(".")[0]] if name != perm]
    keys = list(holdings)
    roles = role_model.objects.bulk_create([role_model(name=f"suite role {i}") for i in range(len(keys))])
    users = user_model.objects.bulk_create([user_model(username=f"suite-user-{i}", password=make_password(None))
                                            for i in range(len(keys))])
    role_model.permissions.through.objects.bulk_create(
        [role_model.permissions.through(role_id=role.pk, permission_id=perm.pk)
         for role, key in zip(roles, keys) for perm in holdings[key]], batch_size=5000)
    user_model.roles.through.objects.bulk_create(
        [user_model.roles.through(user_id=user.pk, role_id=role.pk) for user, role in zip(users, roles)])
    return dict(zip(keys, users))


def make_sessions(users) -> dict:
    """A logged-in session per user, in bulk: `force_login` costs ~15 queries a test."""
    import datetime as dt

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return {}
    store, expires = SessionStore(), timezone.now() + dt.timedelta(days=1)
    keys = {user.pk: get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789") for user in users}
    Session.objects.bulk_create([
        Session(session_key=keys[user.pk], expire_date=expires, session_data=store.encode({
            SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
            HASH_SESSION_KEY: user.get_session_auth_hash()}))
        for user in users])
    return keys


def user_for(who, case, demo):
    if who == ANONYMOUS:
        return None
    if case.permission is None:
        return demo["users"][None]
    user = demo["users"].get((who, case.permission))
    if user is None:
        pytest.fail(f"{case.id} requires permission {case.permission!r}, which does not exist")
    return user


def object_for(case, demo):
    if case.model is None:
        return None
    if case.id in demo["objects"]:
        return demo["objects"][case.id]
    qs = case.model._default_manager.order_by("pk")
    obj = case.pick(qs) if case.pick else qs.first()
    if obj is None:
        label = case.model._meta.label_lower
        if qs.exists():
            pytest.fail(f"demo data has no {label} suitable for {case.id} (e.g. not archived, action available): "
                        f"extend the demo.py of app {case.model._meta.app_label!r} or give its screens a `sample`")
        pytest.fail(f"demo data has no {label}: add some to the demo.py of app {case.model._meta.app_label!r}")
    demo["objects"][case.id] = obj
    return obj


def expected_status(who, case):
    if who == ANONYMOUS:
        return 401 if case.api else 302
    if who == WITHOUT and case.permission is not None:
        return 403
    return 200


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_permission(case, demo, db):
    """One test per screen or endpoint, three requests: anonymous, without, with."""
    url = case.url(object_for(case, demo))
    for who in (ANONYMOUS, WITHOUT, WITH):
        response = get_as(who, case, url, demo)
        expected = expected_status(who, case)
        assert response.status_code == expected, (
            f"GET {url} as {who} (required: {case.permission}) gave {response.status_code}, expected {expected}")
        if who == ANONYMOUS and not case.api:
            assert response["Location"].startswith(reverse("web:login") + "?next="), response["Location"]
        if case.api and expected != 200:
            body = response.json()
            assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
            assert body["error"]["code"] == ("not_authenticated" if expected == 401 else "permission_denied"), body


def get_as(who, case, url, demo):
    from django.conf import settings
    from django.test import Client
    from rest_framework.test import APIClient

    # One client of each kind for the module: each new client loads the middleware again,
    # and WhiteNoise then scans every static file.
    if "clients" not in demo:
        demo["clients"] = {"api": APIClient(), "ui": Client()}
    user = user_for(who, case, demo)
    if case.api:
        # Authentication itself (bearer tokens, sessions) is tested in test_api_tokens;
        # here only the permission check is the subject.
        http = demo["clients"]["api"]
        http.force_authenticate(user)
        return http.get(url)
    http = demo["clients"]["ui"]
    http.cookies.clear()
    if user is not None and user.pk in demo["sessions"]:
        http.cookies[settings.SESSION_COOKIE_NAME] = demo["sessions"][user.pk]
    elif user is not None:
        http.force_login(user)
    return http.get(url)


SCREENS = registry.all_screens()


@pytest.mark.parametrize("screens", SCREENS, ids=[s.url_name("list") for s in SCREENS])
def test_every_list_sorts_by_each_column_and_exports(screens, demo, db):
    """Each column is a sort key and a CSV cell for the demo records, without a server error."""
    from django.conf import settings
    from django.test import Client

    if "superuser_client" not in demo:
        demo["superuser_client"] = Client()
    http = demo["superuser_client"]
    http.cookies.clear()
    if demo["superuser"].pk in demo["sessions"]:
        http.cookies[settings.SESSION_COOKIE_NAME] = demo["sessions"][demo["superuser"].pk]
    else:
        http.force_login(demo["superuser"])
    from django.test import RequestFactory

    url = screens.url("list")
    request = RequestFactory().get(url)
    request.user = demo["superuser"]
    queryset = screens.get_queryset(request)
    for column in screens.columns:  # compiling the query is enough to refuse an unknown field
        str(queryset.order_by(f"-{column}").query)
    response = http.get(url, {"export": "csv", "archived": "1", "sort": screens.columns[-1]})
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) >= 2, f"{url}: the CSV export has no rows although the demo has records"
