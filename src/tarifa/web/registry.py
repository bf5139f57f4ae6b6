"""The registry of screens and API endpoints.

An app declares, in its `screens.py`, one `ModelScreens` per model: its columns, form,
filters and the service functions that write it. The generic views then give it list
(filter, sort, paginate, CSV export), detail with history, create/edit, archive and CSV
import, each behind its permission; navigation, and the permission test suite, read
the same registry.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import models
from django.urls import NoReverseMatch, reverse


@dataclass
class Action:
    """A named button on a detail page, e.g. "Reverse" with permission payments.reverse."""

    name: str
    label: str
    permission: str
    handler: Callable  # handler(obj, *, actor, **form.cleaned_data) -> object
    form_class: type | None = None
    confirm: str = ""
    danger: bool = False
    available: Callable | None = None  # available(obj) -> bool
    pass_request: bool = False  # handler also gets request= (to show a one-time secret, say)
    # form_sample(obj, user) -> {field: value}: what the form-submission suite types into this action's
    # form for `obj` where its generic filler cannot guess (a file, a value that must match the record);
    # it may prepare `user`, the acting user (open a cashier shift, say).
    form_sample: Callable | None = None


@dataclass
class Redirect:
    """What a screen's `create` may return instead of a record when it made several (a bill run
    per cycle, say): the page to show next and the messages for it, (level, text) pairs with the
    levels of django.contrib.messages."""

    url: str
    messages: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ModelScreens:
    model: type[models.Model]
    area: str
    columns: list[str]
    form_class: type | None = None
    create: Callable | None = None  # create(*, actor, **cleaned) -> obj (or a Redirect)
    update: Callable | None = None  # update(obj, *, actor, **cleaned) -> obj
    archive: Callable | None = None  # archive(obj, *, actor, reason) -> obj
    import_fields: list[str] | None = None  # CSV columns accepted by bulk import (uses create)
    filterset_fields: list[str] = field(default_factory=list)
    filterset: type | None = None  # a django-filter FilterSet class, used instead of filterset_fields
    search_fields: list[str] = field(default_factory=list)
    search: Callable | None = None  # search(queryset, query) -> queryset, used instead of search_fields
    ordering: list[str] | None = None
    detail_fields: list[str] | None = None
    detail_template: str | None = None
    actions: list[Action] = field(default_factory=list)
    queryset: Callable | None = None  # queryset(request) -> QuerySet restricted for the user
    menu_label: str | None = None
    menu: bool = True
    detail_context: Callable | None = None  # detail_context(request, obj) -> dict
    # sample(view) -> the record the permission suite opens for `view` ("detail", "edit",
    # "archive" or an action's name). Default: the first record that suits (not archived
    # for edit/archive, `available` for an action), taken from the demo data; also where it returns None.
    sample: Callable | None = None
    # form_sample(view, obj, user) -> {field: value}: what the form-submission suite types into the
    # create ("add", obj None) or edit ("edit", obj) form where its generic filler cannot guess.
    form_sample: Callable | None = None
    # editable(obj) -> bool: whether the record may be edited now (a signed contract, a price that has
    # applied may not). False hides Edit and refuses the edit page with a message. Default: yes.
    editable: Callable | None = None
    # What saving the create form does, shown above it (a bill run, say): the confirmation step of an
    # add whose effects cannot be undone.
    confirm: str = ""
    # The permission a generic view checks, when it is not <app>.<view>_<model>: e.g.
    # {"add": "billing.assign_cycle"} where the create service checks that one.
    permissions: dict[str, str] = field(default_factory=dict)
    # The setting naming the largest file its add/import/action forms take (default
    # TARIFA_MAX_UPLOAD_BYTES); checked before the body is read (web.middleware.upload_limit).
    max_upload_setting: str | None = None
    # How values read (web/display.py): money fields whose currency is not beside them nor on a
    # foreign key's record, {"field": "path__to__currency"} (None: not money); and formats of what only
    # the app knows, {"field": callable(obj) -> str}, e.g. usage as 1m29s or MB by its usage type.
    money: dict[str, str | None] = field(default_factory=dict)
    formats: dict[str, Callable] = field(default_factory=dict)

    @property
    def app_label(self):
        return self.model._meta.app_label

    @property
    def model_name(self):
        return self.model._meta.model_name

    @property
    def verbose_name(self):
        return self.model._meta.verbose_name

    @property
    def verbose_name_plural(self):
        return self.model._meta.verbose_name_plural

    def perm(self, action: str) -> str:
        return self.permissions.get(action) or f"{self.app_label}.{action}_{self.model_name}"

    def url_name(self, view: str) -> str:
        return f"{self.app_label}:{self.model_name}_{view}"

    def url(self, view: str, obj=None) -> str | None:
        try:
            return reverse(self.url_name(view), args=[obj.pk] if obj is not None else [])
        except NoReverseMatch:
            return None

    def get_queryset(self, request):
        qs = self.queryset(request) if self.queryset else self.model._default_manager.all()
        return qs


@dataclass
class Page:
    """A screen that is not a model's list/detail (dashboard, jobs, calculators)."""

    name: str  # url name, e.g. "web:jobs"
    label: str
    area: str
    permission: str | None
    menu: bool = True


_screens: dict[type, ModelScreens] = {}
_pages: list[Page] = []

AREAS = ["Customers", "Billing", "Payments", "Catalog", "Usage", "Operations", "Reports", "Administration"]


def register(screens: ModelScreens) -> ModelScreens:
    from django.forms import ModelForm

    from .forms import RecordForm

    form = screens.form_class
    if form is not None and issubclass(form, ModelForm) and not issubclass(form, RecordForm):
        # A plain ModelForm cannot tell create from edit (see RecordForm): refused at start-up.
        raise TypeError(f"{form.__module__}.{form.__qualname__}: the form of a registered screen derives from "
                        f"tarifa.web.forms.RecordForm, not django.forms.ModelForm")
    _screens[screens.model] = screens
    return screens


def register_page(page: Page) -> Page:
    if page.name not in {p.name for p in _pages}:
        _pages.append(page)
    return page


def all_screens() -> list[ModelScreens]:
    return list(_screens.values())


def all_pages() -> list[Page]:
    return list(_pages)


def screens_for(model_or_obj) -> ModelScreens | None:
    model = model_or_obj if isinstance(model_or_obj, type) else type(model_or_obj)
    return _screens.get(model)


def url_for(obj) -> str | None:
    screens = screens_for(obj)
    return screens.url("detail", obj) if screens else None
