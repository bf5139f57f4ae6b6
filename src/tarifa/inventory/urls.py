"""Warehouse pages beyond the generic screens: the scanner receipt, moving goods, the technician's
own stock, stock reports and the invariant check."""

import datetime as dt

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _

from tarifa.kernel.clock import today
from tarifa.kernel.errors import DomainError
from tarifa.web.forms import apply_domain_error
from tarifa.web.views import PermissionRequiredView

from . import selectors, services
from .forms import MoveForm, ReceiptForm
from .models import Location

MAX_CSV_BYTES = 2_000_000


class ReceiveView(PermissionRequiredView):
    """Goods receipt at scanner speed: each scan (keyboard input ending in Enter) adds a serial to
    the list; pasting a list or uploading a CSV adds many. Posting receives all or nothing."""

    permission = "inventory.add_move"

    def get(self, request):
        return render(request, "inventory/receive.html", {"form": ReceiptForm()})

    def post(self, request):
        form = ReceiptForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            text = data["serials"] or ""
            upload = data.get("csv_file")
            if upload is not None:
                if upload.size > MAX_CSV_BYTES:
                    form.add_error("csv_file", _("The file is larger than 2 MB."))
                    return render(request, "inventory/receive.html", {"form": form}, status=200)
                try:
                    text += "\n" + upload.read().decode("utf-8-sig")
                except UnicodeDecodeError:
                    form.add_error("csv_file", _("The file is not UTF-8 text."))
                    return render(request, "inventory/receive.html", {"form": form})
                if "\x00" in text:
                    form.add_error("csv_file", _("The file holds NUL characters."))
                    return render(request, "inventory/receive.html", {"form": form})
            item = data["item"]
            try:
                moves = services.receive(
                    actor=request.user, warehouse=data["warehouse"], item=item,
                    serials=services.parse_serials(text) if item.by_serial else None,
                    quantity=data.get("quantity"), unit_cost=data.get("unit_cost"), reason=data.get("reason") or "")
            except DomainError as exc:
                apply_domain_error(form, exc)
                return render(request, "inventory/receive.html", {"form": form, "refused": exc.fields.get("serials")})
            messages.success(request, _("Received %(n)s × %(item)s into %(loc)s.") % {
                "n": len(moves) if item.by_serial else f"{moves[0].quantity.normalize():f}", "item": item,
                "loc": data["warehouse"]})
            return redirect(reverse("inventory:location_detail", args=[data["warehouse"].pk]))
        return render(request, "inventory/receive.html", {"form": form})


class MoveView(PermissionRequiredView):
    """Move a serial or a quantity between two locations (issue, transfer, install, return, write-off)."""

    permission = "inventory.add_move"

    def get(self, request):
        initial = {k: request.GET[k] for k in ("serial", "from_location", "to_location") if k in request.GET}
        return render(request, "inventory/move.html", {"form": MoveForm(initial=initial)})

    def post(self, request):
        form = MoveForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                moved = services.move(actor=request.user, from_location=data["from_location"],
                                      to_location=data["to_location"], serial=data["serial"] or None,
                                      item=None if data["serial"] else data["item"], quantity=data["quantity"],
                                      kind=data["kind"] or None, reason=data["reason"])
            except DomainError as exc:
                apply_domain_error(form, exc)
                return render(request, "inventory/move.html", {"form": form})
            messages.success(request, _("Posted: %(move)s, %(a)s → %(b)s.") % {
                "move": moved, "a": moved.from_location, "b": moved.to_location})
            return redirect(reverse("inventory:move_list"))
        return render(request, "inventory/move.html", {"form": form})


class MyStockView(PermissionRequiredView):
    """The signed-in technician's own stock: what they hold, to install or bring back."""

    permission = "inventory.view_location"

    def get(self, request):
        location = Location.objects.filter(kind=Location.Kind.TECHNICIAN, technician=request.user,
                                           archived_at__isnull=True).first()
        if location is not None:
            return redirect(reverse("inventory:location_detail", args=[location.pk]))
        return render(request, "inventory/my_stock.html", {
            "technicians": Location.objects.filter(kind=Location.Kind.TECHNICIAN, archived_at__isnull=True)
            .select_related("technician")})


def _date(value, default):
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        return default


class ReportsView(PermissionRequiredView):
    """On-hand per location and item, stock value at cost, movements over a period, technicians'
    accountability."""

    permission = "inventory.view_location"
    extra_query_params = ("date_from", "date_to")

    def get(self, request):
        date_to = _date(request.GET.get("date_to"), today())
        date_from = _date(request.GET.get("date_from"), date_to.replace(day=1))
        return render(request, "inventory/reports.html", {
            "stock": selectors.stock_by_location()[:2000], "values": selectors.value_at_cost(),
            "movements": selectors.movements(date_from, date_to), "date_from": date_from, "date_to": date_to,
            "technicians": selectors.accountability()})


class CheckView(PermissionRequiredView):
    permission = "inventory.check_inventory"

    def get(self, request):
        return render(request, "inventory/check.html", {"report": selectors.check_inventory()})


urlpatterns = [
    path("receive/", ReceiveView.as_view(), name="receive"),
    path("move-goods/", MoveView.as_view(), name="move"),
    path("my-stock/", MyStockView.as_view(), name="my_stock"),
    path("reports/", ReportsView.as_view(), name="reports"),
    path("check/", CheckView.as_view(), name="check"),
]
