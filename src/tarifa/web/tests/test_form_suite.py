"""The generic form-submission suite: every registered form is submitted, not only opened.

For each `ModelScreens` with a create form (add), an edit form (edit), and each `Action`
with a `form_class` (computed from the registry at collection time, like the permission
suite, so a new screen is covered the moment it is registered):
- valid: the form is filled (demo records for references, a value of the field's kind
  for the rest, the screen's `form_sample` where the filler cannot guess), POSTed through
  the real view by a user holding exactly the view's permission; the view must redirect
  (no form errors, no 5xx), and the record must exist (add) / have changed (edit) with the
  submitted values, or the action must have been recorded in the audit trail;
- invalid: the same form POSTed with every field blank must answer 200 with field errors
  and write nothing (no new record, no audit event). Forms with no required field skip this.

Also a contract checked without submitting: the create form offers every keyword argument
its `create` service requires (the class of issue 10 item 1: a form that hid its create-only
fields and a service then called without them).
"""

import datetime as dt
import inspect
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django import forms
from django.db import models, transaction
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape

import tarifa.urls  # noqa: F401  (importing the URLconf registers every app's screens)
from tarifa.web import registry
from tarifa.testing.forms import as_post_value, guess, unique_token
from tarifa.web.tests.test_permission_suite import make_sessions

ANY_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class FormCase:
    id: str
    screens: registry.ModelScreens
    view: str  # "add", "edit" or "action"
    action: registry.Action | None = None

    @property
    def permission(self):
        if self.view == "action":
            return self.action.permission
        return self.screens.perm("add" if self.view == "add" else "change")


def _url_exists(name, args=()) -> bool:
    try:
        reverse(name, args=args)
        return True
    except NoReverseMatch:
        return False


def form_cases():
    for s in registry.all_screens():
        if s.form_class is not None and s.create is not None and _url_exists(s.url_name("add")):
            yield FormCase(f"{s.url_name('add')}", s, "add")
        if s.form_class is not None and s.update is not None and _url_exists(s.url_name("edit"), [ANY_UUID]):
            yield FormCase(f"{s.url_name('edit')}", s, "edit")
        for a in s.actions:
            if a.form_class is not None:
                yield FormCase(f"{s.url_name('action')}:{a.name}", s, "action", a)


CASES = list(form_cases())
assert len({c.id for c in CASES}) == len(CASES), "duplicate form-suite case ids"


def test_the_registry_was_read_at_collection_time():
    ids = {c.id for c in CASES}
    assert {"subscriptions:subscription_add", "catalog:tariff_add", "catalog:priceversion_add",
            "identity:role_edit", "subscriptions:subscription_action:terminate"} <= ids


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo data set, users holding exactly each permission the cases need, and their
    sessions; made once, every test runs in a savepoint, all rolled back at the end."""
    from django.contrib.auth import get_user_model

    from tarifa.web.demo_loader import load_demo

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            load_demo(actor="demo")
            users = make_users(sorted({c.permission for c in CASES}))
            superuser = get_user_model().objects.create(username="form-suite-superuser", is_superuser=True)
            yield {"users": users, "superuser": superuser,
                   "sessions": make_sessions([*users.values(), superuser])}
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


def make_users(perms) -> dict:
    """{perm: a user holding exactly perm}, in bulk (scaffolding, not the subject)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Permission

    role_model, user_model = apps.get_model("identity", "Role"), get_user_model()
    every = {f"{p.content_type.app_label}.{p.codename}": p for p in Permission.objects.select_related("content_type")}
    missing = [p for p in perms if p not in every]
    assert not missing, f"permissions required by registered forms do not exist: {missing}"
    roles = role_model.objects.bulk_create([role_model(name=f"form suite role {i}") for i in range(len(perms))])
    users = user_model.objects.bulk_create([user_model(username=f"form-suite-user-{i}", password=make_password(None))
                                            for i in range(len(perms))])
    role_model.permissions.through.objects.bulk_create(
        [role_model.permissions.through(role_id=role.pk, permission_id=every[perm].pk)
         for role, perm in zip(roles, perms)])
    user_model.roles.through.objects.bulk_create(
        [user_model.roles.through(user_id=user.pk, role_id=role.pk) for user, role in zip(users, roles)])
    return dict(zip(perms, users))


def client_for(user, demo):
    from django.conf import settings
    from django.test import Client

    http = Client()
    if user.pk in demo["sessions"]:
        http.cookies[settings.SESSION_COOKIE_NAME] = demo["sessions"][user.pk]
    else:
        http.force_login(user)
    return http


# --- the subject record --------------------------------------------------------------------------

def subject_for(case):
    """The record an edit form or an action is submitted for (as the permission suite picks it)."""
    s = case.screens
    view = case.action.name if case.action else "edit"
    if s.sample is not None:
        obj = s.sample(view)
        if obj is not None:
            return obj
    qs = s.model._default_manager.order_by("pk")
    if hasattr(s.model, "archived_at"):
        qs = qs.filter(archived_at__isnull=True)
    for obj in qs.iterator(chunk_size=100):
        if case.action is None and (s.editable is None or s.editable(obj)):
            return obj
        if case.action is not None and (case.action.available is None or case.action.available(obj)):
            return obj
    pytest.fail(f"demo data has no {s.model._meta.label_lower} for {case.id}: extend the app's demo.py "
                f"or give its screens a `sample`")


def build_form(case, obj, request):
    """The unbound form exactly as the view builds it for GET."""
    from tarifa.web.views import ObjectEditView

    if case.view == "action":
        form = case.action.form_class()
        if hasattr(form, "set_object"):
            form.set_object(obj, request)
        return form
    view = ObjectEditView(screens=case.screens)
    view.request, view.kwargs = request, ({"pk": obj.pk} if obj is not None else {})
    return view.form_for(request, obj)


# --- the generic filler ----------------------------------------------------------------------------

EDITABLE_TEXT = ("name", "title", "label", "note", "description", "comment", "memo", "display_name", "first_name",
                 "legal_name")


def reference_by_number(case, name, field):
    """A text field named after a foreign key of the screen's model (a customer or account typed by
    its number): the number (or code) of the first live record it refers to."""
    try:
        fk = case.screens.model._meta.get_field(name)
    except Exception:
        return None
    if not getattr(fk, "related_model", None) or not isinstance(field, forms.CharField):
        return None
    qs = fk.related_model._default_manager.order_by("pk")
    if hasattr(fk.related_model, "archived_at"):
        qs = qs.filter(archived_at__isnull=True)
    if hasattr(fk.related_model, "status"):
        qs = qs.filter(status="active") if qs.filter(status="active").exists() else qs
    first = qs.first()
    return None if first is None else str(getattr(first, "number", None) or getattr(first, "code", None) or first.pk)


def fill(case, form, obj, user):
    """POST data for `form`: its initial values, a guess for each empty required field (and a
    changed text for edits, so the edit is visible), then the screen's form_sample on top.
    Returns (data, files, changed): changed tells whether the data differs from the record."""
    data, blanks = {}, []
    for name, field in form.fields.items():
        if field.disabled:
            continue
        bound = form[name]
        value = as_post_value(field, bound.value())
        if value in (None, "", []) and field.required:
            value = reference_by_number(case, name, field) or guess(name, field)
        if value in (None, "", []) and field.required:
            blanks.append(name)
        if value is not None:
            data[name] = value
    changed = False
    if case.view == "edit":
        for name in EDITABLE_TEXT:
            field = form.fields.get(name)
            if field is not None and not field.disabled and isinstance(field, forms.CharField):
                data[name] = f"{data.get(name, '') or 'Suite'} (edited {unique_token()})"[:field.max_length or 200]
                changed = True
                break
    sample = None
    if case.view == "action" and case.action.form_sample:
        sample = case.action.form_sample(obj, user)
    elif case.view != "action" and case.screens.form_sample:
        sample = case.screens.form_sample(case.view, obj, user)
    files = {}
    for name, value in (sample or {}).items():
        changed = True
        if hasattr(value, "read"):
            files[name] = value
        else:
            data[name] = value
    blanks = [b for b in blanks if b not in data and b not in files]
    assert not blanks, (f"{case.id}: the suite cannot guess required fields {blanks}: give the "
                        f"{'Action' if case.view == 'action' else 'ModelScreens'} a form_sample")
    return {k: v for k, v in data.items() if v is not None}, files, changed


def snapshot(obj):
    if obj is None:
        return None
    fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
    return None if fresh is None else {f.attname: getattr(fresh, f.attname) for f in type(obj)._meta.concrete_fields}


def form_errors(response):
    form = response.context.get("form") if response.context else None
    if form is None:
        return {}
    return {k: [str(e) for e in v] for k, v in form.errors.items()}


def comparable(value):
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (Decimal, int)) and not isinstance(value, bool):
        return Decimal(value).normalize()
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0)
    return value


def assert_saved(case, record, cleaned):
    """Each model field the form submitted holds the submitted (cleaned) value."""
    fields = {f.name: f for f in case.screens.model._meta.concrete_fields}
    differ = {}
    for name, value in cleaned.items():
        field = fields.get(name)
        if field is None or isinstance(value, (list, dict)) or value in (None, ""):
            continue
        stored = getattr(record, name)
        if isinstance(stored, models.Model) and isinstance(value, str):  # a reference typed by number or code
            if value.strip() in {str(stored.pk), str(stored), str(getattr(stored, "number", "")),
                                 str(getattr(stored, "code", ""))}:
                continue
        if isinstance(stored, int) and not isinstance(stored, bool) and isinstance(value, str) and not value.isdigit():
            continue  # a quantity typed as text (300m, 10GB), which the service converts to units
        if isinstance(field, models.CharField) and isinstance(value, str) and field.choices is None:
            if comparable(stored).casefold() != comparable(value).casefold():
                differ[name] = (value, stored)
        elif isinstance(stored, Decimal) and isinstance(value, str):
            try:
                same = Decimal(value).normalize() == stored.normalize()
            except ArithmeticError:
                same = False
            if not same:
                differ[name] = (value, stored)
        elif comparable(stored) != comparable(value):
            differ[name] = (value, stored)
    assert not differ, f"{case.id}: submitted and stored values differ (submitted, stored): {differ}"


def audit_count():
    from django.apps import apps

    return apps.get_model("audit", "AuditEvent").objects.count()


def request_for(user):
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_form_submits(case, demo, db):
    """Valid data is saved with its values; blank data shows field errors and writes nothing."""
    s, user = case.screens, demo["users"][case.permission]
    obj = None if case.view == "add" else subject_for(case)
    if case.view == "add":
        url = s.url("add")
    elif case.view == "edit":
        url = s.url("edit", obj)
    else:
        url = reverse(s.url_name("action"), args=[obj.pk, case.action.name])
    http = client_for(user, demo)
    page = http.get(url)
    assert page.status_code == 200, f"GET {url}"
    confirm = case.action.confirm if case.action else (s.confirm if case.view == "add" else "")
    if confirm:  # the page before the irreversible step says what will happen
        assert escape(str(confirm)) in page.content.decode(), f"GET {url} does not show its confirmation text"
    form = build_form(case, obj, request_for(user))

    # Invalid: every field blank.
    required = [n for n, f in form.fields.items() if f.required and not f.disabled]
    if required:
        before_records, before_events = s.model._default_manager.count(), audit_count()
        with transaction.atomic():
            response = http.post(url, {})
        assert response.status_code == 200, f"POST {url} with blank fields gave {response.status_code}"
        errors = form_errors(response)
        assert errors, f"POST {url} with blank fields showed no field error"
        assert set(errors) & set(required), f"POST {url} with blank fields: errors {errors}, required {required}"
        assert s.model._default_manager.count() == before_records and audit_count() == before_events, (
            f"POST {url} with blank fields wrote something")

    # Valid: what the form makes of the data (before the POST, while codes are still free), then the POST.
    data, files, changed = fill(case, form, obj, user)
    cleaned = {}
    if case.view != "action":
        from tarifa.web.views import ObjectEditView

        view = ObjectEditView(screens=s)
        view.kwargs = {"pk": obj.pk} if obj is not None else {}
        bound = view.form_for(request_for(user), obj, data, dict(files))
        assert bound.is_valid(), f"{case.id}: the filled form is invalid: {bound.errors.as_data()}; data {data}"
        cleaned = dict(bound.cleaned_data)
        for upload in files.values():
            upload.seek(0)
    before_pks = set(s.model._default_manager.values_list("pk", flat=True))
    before_events, before_subject = audit_count(), snapshot(obj)
    response = http.post(url, {**data, **files})
    assert response.status_code == 302, (
        f"POST {url} with {data} gave {response.status_code}: {form_errors(response) or response.content[:500]}")
    if case.view != "edit" or changed:
        assert audit_count() > before_events or snapshot(obj) != before_subject, (
            f"{case.id}: the submission changed nothing (no audit event, the record unchanged)")
    if case.view == "add":
        new = set(s.model._default_manager.values_list("pk", flat=True)) - before_pks
        assert new, f"POST {url} redirected but no {s.model._meta.label_lower} was created"
        if len(new) == 1:
            assert_saved(case, s.model._default_manager.get(pk=new.pop()), cleaned)
    elif case.view == "edit":
        assert_saved(case, s.model._default_manager.get(pk=obj.pk), cleaned)


CREATE_SCREENS = [s for s in registry.all_screens() if s.form_class is not None and s.create is not None]


@pytest.mark.parametrize("screens", CREATE_SCREENS, ids=[s.url_name("add") for s in CREATE_SCREENS])
def test_create_form_offers_what_the_create_service_requires(screens, demo, db):
    """Every keyword argument the create service needs (no default) is a field of its create form."""
    params = inspect.signature(screens.create).parameters.values()
    needed = {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty and p.name != "actor"}
    form = build_form(FormCase("", screens, "add"), None, request_for(demo["superuser"]))
    missing = needed - set(form.fields)
    assert not missing, f"{screens.url_name('add')}: the create form lacks {sorted(missing)}, which the service requires"


# --- guard rails ---------------------------------------------------------------------------------

# Actions whose effect cannot be undone (or only by another booking): their page says what will happen.
IRREVERSIBLE = {"terminate", "close", "switch-mode", "reverse", "discard", "credit", "issue", "sell", "void",
                "deactivate", "revoke", "remove", "ignore", "rotate-credentials", "activate"}
# Actions the audit trail must explain: a reason is required.
REASON_REQUIRED = {"terminate", "reverse", "ignore"}
ACTIONS = [(s, a) for s in registry.all_screens() for a in s.actions]


@pytest.mark.parametrize("screens,action", ACTIONS, ids=[f"{s.url_name('action')}:{a.name}" for s, a in ACTIONS])
def test_irreversible_actions_confirm_what_will_happen(screens, action):
    """A dangerous or irreversible action has a confirmation text (shown on its page, checked above)."""
    if action.danger or action.name in IRREVERSIBLE:
        assert str(action.confirm).strip(), (f"{screens.url_name('action')}:{action.name} is irreversible: give it "
                                             f"confirm= saying what will happen")
    if action.name in REASON_REQUIRED:
        form = action.form_class() if action.form_class else None
        assert form is not None and "reason" in form.fields and form.fields["reason"].required, (
            f"{screens.url_name('action')}:{action.name}: the audit needs a reason; make it a required field")


def test_archiving_requires_a_reason_and_bill_runs_confirm():
    from tarifa.web.forms import ArchiveForm

    assert ArchiveForm().fields["reason"].required
    billrun = next(s for s in registry.all_screens() if s.url_name("add") == "billing:billrun_add")
    assert "Dry run" in str(billrun.confirm)


def test_a_plain_model_form_cannot_be_registered():
    """The class of issue 10 item 1 is refused at start-up: a registered ModelForm derives from
    RecordForm, whose `editing` is right for unsaved records with a UUID default."""
    from django.apps import apps

    from tarifa.web.forms import RecordForm

    model = apps.get_model("audit", "AuditEvent")

    class Plain(forms.ModelForm):
        class Meta:
            model = apps.get_model("audit", "AuditEvent")
            fields = ["message"]

    with pytest.raises(TypeError, match="RecordForm"):
        registry.register(registry.ModelScreens(model=model, area="Administration", columns=["at"], form_class=Plain))
    assert registry.screens_for(model).form_class is None  # the audit trail's own screens stay as they were

    class Record(RecordForm):
        class Meta:
            model = apps.get_model("audit", "AuditEvent")
            fields = ["message"]

    new = Record()
    assert new.instance.pk is not None and new.editing is False  # the UUID default filled the pk of an unsaved row
