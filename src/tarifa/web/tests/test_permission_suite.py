"""The generic permission suite: every registered screen, page and API endpoint, three ways.

For each one (computed from the registry at collection time, so a new app's screens and
endpoints are covered the moment they are registered):
- anonymous: the UI redirects to the login page, the API answers 401 in the error format;
- a user holding every permission *except* the required one: 403;
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
    return lambda qs: screens.sample(view)


def screen_cases():
    for s in registry.all_screens():
        yield Case(s.url_name("list"), s.perm("view"), lambda obj, s=s: s.url("list"))
        yield Case(s.url_name("detail"), s.perm("view"), lambda obj, s=s: s.url("detail", obj), s.model,
                   _sampled(s, "detail", None))
        if _url_exists(s.url_name("add")):
            yield Case(s.url_name("add"), s.perm("add"), lambda obj, s=s: s.url("add"))
        if _url_exists(s.url_name("edit"), [ANY_UUID]):
            yield Case(s.url_name("edit"), s.perm("change"), lambda obj, s=s: s.url("edit", obj), s.model,
                       _sampled(s, "edit", _not_archived))
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
    """The demo data set, loaded once; every test of this module runs in a savepoint inside it."""
    from tarifa.web.demo_loader import load_demo

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            load_demo(actor="demo")
            yield
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def tarifa_permission_names():
    """Every permission a role can hold (those of Tarifa's own apps)."""
    from django.apps import apps
    from django.contrib.auth.models import Permission

    labels = [c.label for c in apps.get_app_configs() if c.name.startswith("tarifa.")]
    return [f"{app}.{codename}" for app, codename in Permission.objects.filter(content_type__app_label__in=labels)
            .values_list("content_type__app_label", "codename")]


def user_for(who, permission, make_user):
    if who == ANONYMOUS:
        return None
    if who == WITHOUT:
        others = [n for n in tarifa_permission_names() if n != permission]
        return make_user(*others, username="suite-without", password=None)
    return make_user(*([permission] if permission else []), username="suite-with", password=None)


def object_for(case):
    if case.model is None:
        return None
    qs = case.model._default_manager.order_by("pk")
    obj = case.pick(qs) if case.pick else qs.first()
    if obj is None:
        label = case.model._meta.label_lower
        if qs.exists():
            pytest.fail(f"demo data has no {label} suitable for {case.id} (e.g. not archived, action available): "
                        f"extend the demo.py of app {case.model._meta.app_label!r} or give its screens a `sample`")
        pytest.fail(f"demo data has no {label}: add some to the demo.py of app {case.model._meta.app_label!r}")
    return obj


def expected_status(who, case):
    if who == ANONYMOUS:
        return 401 if case.api else 302
    if who == WITHOUT and case.permission is not None:
        return 403
    return 200


@pytest.mark.parametrize("who", [ANONYMOUS, WITHOUT, WITH])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_permission(case, who, demo, db, client, make_user, api):
    url = case.url(object_for(case))
    user = user_for(who, case.permission, make_user)
    if case.api:
        http = api(user)
    else:
        http = client
        if user is not None:
            http.force_login(user)

    response = http.get(url)

    expected = expected_status(who, case)
    assert response.status_code == expected, (
        f"GET {url} as {who} (required: {case.permission}) gave {response.status_code}, expected {expected}")
    if who == ANONYMOUS and not case.api:
        assert response["Location"].startswith(reverse("web:login") + "?next="), response["Location"]
    if case.api and expected != 200:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}, body
        assert body["error"]["code"] == ("not_authenticated" if expected == 401 else "permission_denied"), body
