"""Generic operator screens driven by the registry (see registry.py)."""

import csv
import io

import django_filters
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.views import View

from tarifa.audit.selectors import history
from tarifa.kernel import ownership
from tarifa.kernel.errors import DomainError

from . import display, registry
from .csvexport import SafeWriter
from .forms import ArchiveForm, ImportForm, apply_domain_error
from .pagination import paginate

PAGE_SIZES = (25, 50, 100, 250)
MAX_IMPORT_ROWS = 10_000


class PermissionRequiredView(View):
    """Anonymous users go to the login page; users without the permission get 403."""

    permission: str | None = None

    def required_permission(self) -> str | None:
        return self.permission

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        perm = self.required_permission()
        if perm and not request.user.has_perm(perm):
            raise DjangoPermissionDenied(perm)
        return super().dispatch(request, *args, **kwargs)


class ScreenView(PermissionRequiredView):
    screens: registry.ModelScreens = None
    action = "view"

    def required_permission(self):
        return self.screens.perm(self.action)

    def get_object(self, pk):
        try:
            return self.screens.get_queryset(self.request).get(pk=pk)
        except (self.screens.model.DoesNotExist, ValueError, DjangoValidationError):
            raise Http404(str(self.screens.verbose_name)) from None

    def base_context(self, **extra):
        from .navigation import screen_label

        context = {"screens": self.screens, "model_name": self.screens.verbose_name,
                   "model_name_plural": self.screens.verbose_name_plural, "list_label": screen_label(self.screens),
                   "owned_by_centre": ownership.centrally_owned(self.screens.model), **extra}
        if context["owned_by_centre"]:  # a branch's copy of the centre's reference data: no edit actions
            context.update(can_add=False, can_import=False, can_change=False, can_archive=False, actions=[])
        return context


def field_label(model, name: str) -> str:
    try:
        # the value is shown in human units (web/display.py), not the base units the field stores
        return str(model._meta.get_field(name).verbose_name).replace(" (base units)", "")
    except Exception:
        return name.replace("__", " ").replace("_", " ")


def cell_value(obj, name: str):
    value = obj
    for part in name.split("__"):
        if value is None:
            return ""
        display = getattr(value, f"get_{part}_display", None)
        value = display() if callable(display) else getattr(value, part, "")
        if callable(value) and not hasattr(value, "_meta"):
            value = value()
    return "" if value is None else value


def build_filterset(screens):
    if screens.filterset is not None:
        return screens.filterset
    fields = screens.filterset_fields or []
    return django_filters.filterset.filterset_factory(screens.model, fields=fields) if fields else None


def list_queryset(s, request):
    """A list's rows as the request asks for them: (queryset, filterset, query, sort)."""
    qs = s.get_queryset(request)
    filterset = None
    if fs_class := build_filterset(s):
        filterset = fs_class(request.GET, queryset=qs, request=request)  # a filter may ask who looks
        qs = filterset.qs if filterset.is_valid() else qs.none()
    query = request.GET.get("q", "").strip()
    if query and s.search:
        qs = s.search(qs, query)
    elif query and s.search_fields:
        cond = Q()
        for f in s.search_fields:
            cond |= Q(**{f"{f}__icontains": query})
        qs = qs.filter(cond)
    if request.GET.get("archived") != "1" and hasattr(s.model, "archived_at"):
        qs = qs.filter(archived_at__isnull=True)
    sort = request.GET.get("sort", "")
    if sort.lstrip("-") in s.columns:
        qs = qs.order_by(sort, "pk")
    elif s.ordering:
        qs = qs.order_by(*s.ordering)
    return qs, filterset, query, sort


def csv_rows(qs, columns, screens):
    """The CSV text of a list, in chunks: a header, then one line per record."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer)  # no cell may start a spreadsheet formula
    writer.writerow(["id"] + [capfirst(label) for _, label in columns])
    for obj in qs.iterator(chunk_size=2000):
        writer.writerow([obj.pk] + [display.render_value(obj, c, screens=screens, html=False, beside=screens.columns)
                                    for c, _ in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
    yield buffer.getvalue()


class ObjectListView(ScreenView):
    def get(self, request):
        s = self.screens
        qs, filterset, query, sort = list_queryset(s, request)
        columns = [(c, field_label(s.model, c)) for c in s.columns]
        if request.GET.get("export") == "csv":
            return self.export(request, qs, columns)
        try:
            per_page = int(request.GET.get("per_page", 50))
        except ValueError:
            per_page = 50
        per_page = per_page if per_page in PAGE_SIZES else 50
        page = paginate(qs, request.GET.get("page"), per_page)  # no COUNT(*) over a large table
        user = request.user
        rows = [(obj, [display.render_value(obj, c, screens=s, user=user, beside=s.columns) for c in s.columns])
                for obj in page.object_list]
        params = request.GET.copy()
        params.pop("page", None)
        context = self.base_context(page=page, rows=rows, columns=columns, filterset=filterset, query=query,
                                    sort=sort, querystring=params.urlencode(), page_sizes=PAGE_SIZES,
                                    searchable=bool(s.search or s.search_fields),
                                    per_page=per_page,
                                    can_add=bool(s.create) and request.user.has_perm(s.perm("add")),
                                    can_import=bool(s.import_fields) and request.user.has_perm(s.perm("add")),
                                    show_archived=request.GET.get("archived") == "1")
        template = "web/_list_table.html" if request.htmx and request.htmx.target == "object-table" else "web/object_list.html"
        return render(request, template, context)

    def export(self, request, qs, columns):
        """Small lists stream at once; above TARIFA_EXPORT_IN_REQUEST_MAX_ROWS rows the export runs as
        a background task (tarifa.web.exports) and this answers with the task's page."""
        from django.conf import settings

        from .pagination import bounded_count

        limit = int(getattr(settings, "TARIFA_EXPORT_IN_REQUEST_MAX_ROWS", 20000))
        if bounded_count(qs, limit) is None:
            from . import exports

            task = exports.start(self.screens, request)
            messages.info(request, _("A large export runs in the background: its file is offered here when ready."))
            return redirect("web:task", pk=task.pk)
        name = f"{self.screens.model_name}s.csv"
        response = StreamingHttpResponse(csv_rows(qs, columns, self.screens), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ObjectDetailView(ScreenView):
    def get(self, request, pk):
        s = self.screens
        obj = self.get_object(pk)
        names = display.detail_field_names(s.model, s.detail_fields)
        fields = [(field_label(s.model, n), display.render_value(obj, n, screens=s, user=request.user)) for n in names]
        actions = [a for a in s.actions if request.user.has_perm(a.permission) and (a.available is None or a.available(obj))]
        archived = getattr(obj, "archived_at", None) is not None
        context = self.base_context(
            object=obj, fields=fields, actions=actions,
            history=history(obj)[:200],
            can_change=(bool(s.update) and not archived and (s.editable is None or s.editable(obj))
                        and request.user.has_perm(s.perm("change"))),
            can_archive=bool(s.archive) and not archived and request.user.has_perm(s.perm("delete")),
            archived=archived,
        )
        if s.detail_context:
            context.update(s.detail_context(request, obj))
        return render(request, s.detail_template or "web/object_detail.html", context)


class ObjectEditView(ScreenView):
    """Create (no pk) or edit (pk) through the registered service functions."""

    def required_permission(self):
        return self.screens.perm("change" if self.kwargs.get("pk") else "add")

    def form_for(self, request, obj=None, data=None, files=None):
        kwargs = {"data": data, "files": files}
        if obj is not None:
            kwargs["instance"] = obj
        form = self.screens.form_class(**kwargs)
        if hasattr(form, "set_request"):
            form.set_request(request)
        return form

    def refused(self, request, obj):
        """Archived records, and those the screen says may not be edited now, go back to their page."""
        if obj is None:
            return None
        if getattr(obj, "archived_at", None) is not None:
            messages.error(request, _("Archived records cannot be changed."))
            return redirect(self.screens.url("detail", obj))
        if self.screens.editable is not None and not self.screens.editable(obj):
            messages.error(request, _("%(obj)s cannot be changed now.") % {"obj": obj})
            return redirect(self.screens.url("detail", obj))
        return None

    def get(self, request, pk=None):
        obj = self.get_object(pk) if pk else None
        if refused := self.refused(request, obj):
            return refused
        initial_form = self.form_for(request, obj)
        if obj is None:
            initial_form.initial.update({k: v for k, v in request.GET.items() if k in initial_form.fields})
        return self.render_form(request, initial_form, obj)

    def render_form(self, request, form, obj):
        return render(request, "web/object_edit.html", self.base_context(form=form, object=obj))

    def post(self, request, pk=None):
        s = self.screens
        obj = self.get_object(pk) if pk else None
        if refused := self.refused(request, obj):
            return refused
        form = self.form_for(request, obj, request.POST, request.FILES)
        if form.is_valid():
            try:
                data = dict(form.cleaned_data)
                if obj is None:
                    obj = s.create(actor=request.user, **data)
                    if isinstance(obj, registry.Redirect):
                        for level, text in obj.messages:
                            messages.add_message(request, level, text)
                        return redirect(obj.url)
                    messages.success(request, _("Created %(obj)s.") % {"obj": obj})
                else:
                    obj = s.update(obj, actor=request.user, **data)
                    messages.success(request, _("Saved %(obj)s.") % {"obj": obj})
                return redirect(s.url("detail", obj) or s.url("list"))
            except DomainError as exc:
                apply_domain_error(form, exc)
        return self.render_form(request, form, obj)


class ObjectArchiveView(ScreenView):
    action = "delete"

    def get(self, request, pk):
        obj = self.get_object(pk)
        return render(request, "web/object_archive.html", self.base_context(object=obj, form=ArchiveForm()))

    def post(self, request, pk):
        s = self.screens
        obj = self.get_object(pk)
        form = ArchiveForm(request.POST)
        if form.is_valid():
            try:
                s.archive(obj, actor=request.user, reason=form.cleaned_data["reason"])
                messages.success(request, _("Archived %(obj)s.") % {"obj": obj})
                return redirect(s.url("detail", obj))
            except DomainError as exc:
                apply_domain_error(form, exc)
        return render(request, "web/object_archive.html", self.base_context(object=obj, form=form))


class ObjectActionView(ScreenView):
    def required_permission(self):
        return self.get_action().permission

    def get_action(self) -> registry.Action:
        for action in self.screens.actions:
            if action.name == self.kwargs["action"]:
                return action
        raise Http404(_("No such action"))

    def render_action(self, request, obj, action, form):
        return render(request, "web/object_action.html", self.base_context(object=obj, action=action, form=form))

    def unavailable(self, request, obj, act):
        """The button is hidden when `available(obj)` is false; a direct URL is refused too."""
        if act.available is None or act.available(obj):
            return None
        messages.error(request, _("%(action)s is not possible for %(obj)s now.") % {"action": act.label, "obj": obj})
        return redirect(self.screens.url("detail", obj))

    def get(self, request, pk, action):
        obj = self.get_object(pk)
        act = self.get_action()
        if refused := self.unavailable(request, obj, act):
            return refused
        form = act.form_class() if act.form_class else None
        if form is not None and hasattr(form, "set_object"):
            form.set_object(obj, request)
        return self.render_action(request, obj, act, form)

    def post(self, request, pk, action):
        obj = self.get_object(pk)
        act = self.get_action()
        if refused := self.unavailable(request, obj, act):
            return refused
        form = act.form_class(request.POST, request.FILES) if act.form_class else None
        if form is not None and hasattr(form, "set_object"):
            form.set_object(obj, request)
        if form is None or form.is_valid():
            try:
                extra = {"request": request} if act.pass_request else {}
                result = act.handler(obj, actor=request.user, **extra, **(form.cleaned_data if form else {}))
                messages.success(request, _("%(action)s: done.") % {"action": act.label})
                target = registry.url_for(result) if result is not None and hasattr(result, "_meta") else None
                return redirect(target or self.screens.url("detail", obj))
            except DomainError as exc:
                if form is None:
                    messages.error(request, exc.message)
                    return redirect(self.screens.url("detail", obj))
                apply_domain_error(form, exc)
        return self.render_action(request, obj, act, form)


class ObjectImportView(ScreenView):
    """Bulk import from CSV: every row is validated first; one bad row writes nothing."""

    action = "add"

    def get(self, request):
        return render(request, "web/object_import.html", self.base_context(form=ImportForm(), errors=[]))

    def post(self, request):
        s = self.screens
        form = ImportForm(request.POST, request.FILES)
        errors, created = [], 0
        if form.is_valid():
            rows, errors = parse_import(form.cleaned_data["file"], s.import_fields)
            forms = []
            if not errors:
                for line_no, row in rows:
                    row_form = s.form_class(data=row)
                    if hasattr(row_form, "set_request"):
                        row_form.set_request(request)
                    if row_form.is_valid():
                        forms.append((line_no, row_form))
                    else:
                        for fname, errs in row_form.errors.items():
                            errors.append(_("Row %(row)s, %(field)s: %(error)s") % {"row": line_no, "field": fname, "error": " ".join(errs)})
            if not errors:
                try:
                    with transaction.atomic():
                        for line_no, row_form in forms:
                            try:
                                s.create(actor=request.user, **row_form.cleaned_data)
                            except DomainError as exc:
                                errors.append(_("Row %(row)s: %(error)s") % {"row": line_no, "error": exc.message})
                                raise
                        created = len(forms)
                except DomainError:
                    created = 0
            if not errors:
                messages.success(request, _("Imported %(n)s records.") % {"n": created})
                return redirect(s.url("list"))
        return render(request, "web/object_import.html", self.base_context(form=form, errors=errors), status=400 if errors or not form.is_valid() else 200)


def parse_import(upload, allowed_fields):
    """Read an uploaded CSV: header row of field names, then data rows; (rows, errors)."""
    raw = upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [_("The file is not UTF-8 text (byte %(pos)s).") % {"pos": exc.start}]
    try:
        return _parse_import_text(text, allowed_fields)
    except csv.Error as exc:  # a field over the csv module's limit (131072 characters), say
        return [], [_("The file is not readable CSV: %(error)s.") % {"error": exc}]


def _parse_import_text(text, allowed_fields):
    errors = []
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], [_("The file is empty.")]
    unknown = [h for h in header if h not in allowed_fields]
    if unknown:
        return [], [_("Unknown columns: %(cols)s. Allowed: %(allowed)s.") % {"cols": ", ".join(unknown), "allowed": ", ".join(allowed_fields)}]
    rows = []
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            errors.append(_("Row %(row)s: expected %(n)s columns, found %(m)s.") % {"row": line_no, "n": len(header), "m": len(values)})
            continue
        rows.append((line_no, dict(zip(header, (v.strip() for v in values)))))
        if len(rows) > MAX_IMPORT_ROWS:
            return [], [_("Too many rows: at most %(n)s per import.") % {"n": MAX_IMPORT_ROWS}]
    if not rows and not errors:
        errors.append(_("The file has a header but no rows."))
    return rows, errors


class DashboardView(PermissionRequiredView):
    """The landing page after login, so open to every logged-in user (a user without
    identity.view_dashboard would otherwise land on a 403); its figures need that permission."""

    permission = None

    def get(self, request):
        from .dashboard import widgets

        shown = widgets(request) if request.user.has_perm("identity.view_dashboard") else []
        return render(request, "web/dashboard.html", {"widgets": shown})


def healthz(request):
    import json

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        status, db = 200, "ok"
    except Exception:
        status, db = 503, "unavailable"
    body = {"status": "ok" if status == 200 else "error", "database": db}
    return HttpResponse(json.dumps(body), status=status, content_type="application/json")
