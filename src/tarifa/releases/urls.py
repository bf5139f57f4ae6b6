"""The releases' own screens: the overview (release in force, refusals, pull now) and publishing (centre)."""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _

from tarifa.federation import selectors as federation
from tarifa.kernel.errors import DomainError
from tarifa.web.forms import apply_domain_error
from tarifa.web.views import PermissionRequiredView

from . import selectors, services
from .forms import PublishForm
from .models import Release


class OverviewView(PermissionRequiredView):
    permission = "releases.view_release"

    def get(self, request):
        return render(request, "releases/overview.html", {
            "status": selectors.status(), "role": federation.role(),
            "releases": Release.objects.order_by("-number")[:50],
            "can_publish": federation.role() != "branch" and request.user.has_perm("releases.publish_release"),
            "can_pull": federation.role() == "branch" and request.user.has_perm("releases.pull_releases"),
        })

    def post(self, request):
        """Pull now (a branch)."""
        if not request.user.has_perm("releases.pull_releases"):
            raise DjangoPermissionDenied("releases.pull_releases")
        try:
            result = services.pull(actor=request.user)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("releases:overview")
        applied = [r["number"] for r in result["releases"] if r["status"] == "applied"]
        if result["refused"]:
            messages.error(request, _("A release was refused; this branch keeps release %(n)s.") % {
                "n": result["in_force"]})
        elif applied:
            messages.success(request, _("Applied releases %(list)s.") % {"list": ", ".join(map(str, applied))})
        else:
            messages.info(request, _("Nothing new at the centre."))
        return redirect("releases:overview")


class PublishView(PermissionRequiredView):
    """Centre: what the next release holds and how it differs from the last; publishing needs a confirmation."""

    permission = "releases.publish_release"

    def page(self, request, form, status=200):
        preview = services.preview() if federation.role() != "branch" else None
        return render(request, "releases/publish.html", {
            "form": form, "preview": preview, "role": federation.role(),
            "rows": [(label, n, preview["changes"].get(label, {})) for label, n in preview["counts"].items()]
            if preview else [],
            "changes_json": json.dumps(preview["changes"], indent=1, ensure_ascii=False) if preview else ""},
            status=status)

    def get(self, request):
        return self.page(request, PublishForm())

    def post(self, request):
        form = PublishForm(request.POST)
        if form.is_valid():
            try:
                release = services.publish(actor=request.user, effective_date=form.cleaned_data["effective_date"],
                                           note=form.cleaned_data["note"])
            except DomainError as exc:
                apply_domain_error(form, exc)
            else:
                messages.success(request, _("Release %(n)s published.") % {"n": release.number})
                return redirect("releases:release_detail", release.pk)
        return self.page(request, form, status=400)


urlpatterns = [
    path("", OverviewView.as_view(), name="overview"),
    path("publish/", PublishView.as_view(), name="publish"),
]
