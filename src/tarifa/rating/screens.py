"""Operator screens of rating: tariff plans, tariffs' rating and bundles, usage in and out."""

from django.utils.translation import gettext_lazy as _

from tarifa.web.registry import Action, ModelScreens, Page, register, register_page

from . import services, usage
from .units import format_usage
from .forms import (BindingForm, BundleForm, CorrectForm, DestinationForm, DestinationRateForm, PrefixForm, RateForm,
                    RateSlotForm, RatingPlanForm, RatingProfileForm, TariffRatingForm, TenantForm, TimingForm,
                    UsageFormatForm, UsageTypeForm)
from .models import (Bundle, BundleCounter, Destination, DestinationPrefix, DestinationRate, Rate, RateSlot,
                     RatedUsage, RatingPlan, RatingPlanBinding, RatingProfile, RatingTenant, RejectedUsage,
                     RerateRun, TariffRating, Timing, UsageBatch, UsageFormat, UsageType)

AREA = "Usage"

# Usage in human units (1m29s, 1.5 MB) by the record's usage type, never nanoseconds or bytes.
RECORD_FORMATS = {"usage": lambda r: format_usage(r.usage, r.usage_type),
                  "free_units": lambda r: format_usage(r.free_units, r.usage_type) if r.free_units else ""}


def _related(title, rows):
    return {"related_rows": [(title, rows)]}


def _tenant_context(request, tenant):
    from .models import Destination as D
    from .models import Rate as R
    from .models import RatingPlan as P

    return {"related_rows": [
        (_("Rating plans"), P.objects.filter(tenant=tenant, archived_at__isnull=True).order_by("code")[:100]),
        (_("Destinations (first 100)"), D.objects.filter(tenant=tenant, archived_at__isnull=True).order_by("code")[:100]),
        (_("Rates"), R.objects.filter(tenant=tenant, archived_at__isnull=True).order_by("code")[:100]),
    ]}


def _remove(obj, *, actor, **_):
    return services.delete_part(obj, actor=actor)


def _reprocess(record, *, actor, **_):
    usage.reprocess(actor=actor, ids=[record.pk], include_filtered=True)
    record.refresh_from_db()
    return record if record.status == "rejected" else RatedUsage.objects.get(pk=record.pk)


def _correct(record, *, actor, **data):
    fixed = usage.correct(record, actor=actor, **data)
    return fixed if fixed.status == "rejected" else RatedUsage.objects.get(pk=fixed.pk)


register(ModelScreens(
    model=RatingTenant, area=AREA, columns=["code", "name", "plan_version"], form_class=TenantForm,
    create=services.create_tenant, update=services.update_tenant, archive=services.archive_tenant,
    search_fields=["code", "name"], ordering=["code"], menu_label=_("Rating tenants"),
    detail_template="rating/related_detail.html", detail_context=_tenant_context,
))

register(ModelScreens(
    model=Destination, area=AREA, columns=["tenant__code", "code", "name"], form_class=DestinationForm,
    create=services.create_destination, update=services.update_destination, archive=services.archive,
    filterset_fields=["tenant"], search_fields=["code", "name", "prefixes__prefix"], ordering=["tenant__code", "code"],
    detail_template="rating/related_detail.html",
    detail_context=lambda request, d: _related(_("Prefixes"), d.prefixes.order_by("prefix")),
))

register(ModelScreens(
    model=DestinationPrefix, area=AREA, columns=["prefix", "destination__code", "destination__tenant__code"],
    form_class=PrefixForm, create=services.create_prefix, search_fields=["prefix", "destination__code"],
    ordering=["prefix"], menu_label=_("Prefix table"),
    actions=[Action("remove", _("Remove"), "rating.delete_destinationprefix", _remove, danger=True,
                    confirm=_("Remove this prefix from its destination?"))],
))

register(ModelScreens(
    model=Timing, area=AREA, columns=["tenant__code", "code", "week_days", "start_time", "end_time"],
    form_class=TimingForm, create=services.create_timing, update=services.update_timing, archive=services.archive,
    filterset_fields=["tenant"], search_fields=["code", "name"], ordering=["tenant__code", "code"],
))

# --- what the form-submission suite types where its generic filler cannot guess --------------------

def _binding_sample(view, obj, user):
    if view != "add":
        return {}
    plan = RatingPlan.objects.filter(archived_at__isnull=True).order_by("pk").first()
    rate = DestinationRate.objects.filter(tenant=plan.tenant, archived_at__isnull=True).order_by("pk").first()
    return {"rating_plan": str(plan.pk), "destination_rate_code": rate.code, "weight": "5"}


def _tariff_rating_sample(view, obj, user):
    from tarifa.catalog.models import Tariff

    if view != "add":
        return {}
    tariff = (Tariff.objects.filter(archived_at__isnull=True).exclude(pk__in=TariffRating.objects.values("tariff"))
              .order_by("pk").first())
    return {"tariff": str(tariff.pk)}


def _usage_format_sample(view, obj, user):
    import json

    from .formats import builtin

    return {"spec": json.dumps(next(iter(builtin().values())))} if view == "add" else {}


register(ModelScreens(
    model=Rate, area=AREA, columns=["tenant__code", "code", "name"], form_class=RateForm,
    create=services.create_rate, update=services.update_rate, archive=services.archive,
    form_sample=lambda view, obj, user: {"slots": "0, 0.2, 60s, 60s, 0s"} if view == "add" else {},
    filterset_fields=["tenant"], search_fields=["code", "name"], ordering=["tenant__code", "code"],
    detail_template="rating/related_detail.html",
    detail_context=lambda request, r: _related(_("Slots"), r.slots.order_by("id")),
))

register(ModelScreens(
    model=RateSlot, area=AREA, columns=["rate__code", "connect_fee", "price", "rate_unit", "rate_increment",
                                        "group_interval_start"],
    form_class=RateSlotForm, create=services.create_rate_slot, update=services.update_rate_slot,
    form_sample=lambda view, obj, user: ({"rate_unit": "60s", "rate_increment": "1s", "group_interval_start": "3600s"}
                                         if view == "add" else {}),
    filterset_fields=["rate"], ordering=["rate__code", "id"], menu=False,
    actions=[Action("remove", _("Remove"), "rating.delete_rateslot", _remove, danger=True,
                    confirm=_("The slot is removed from its rate: usage rated from now on no longer uses it."))],
))

register(ModelScreens(
    model=DestinationRate, area=AREA,
    columns=["tenant__code", "code", "destination__code", "rate__code", "rounding_method", "rounding_decimals",
             "max_cost", "max_cost_strategy"],
    form_class=DestinationRateForm, create=services.create_destination_rate,
    update=services.update_destination_rate, archive=services.archive, filterset_fields=["tenant"],
    search_fields=["code", "destination__code", "rate__code"], ordering=["tenant__code", "code"],
))

register(ModelScreens(
    model=RatingPlan, area=AREA, columns=["tenant__code", "code", "name"], form_class=RatingPlanForm,
    create=services.create_rating_plan, update=services.update_rating_plan, archive=services.archive,
    filterset_fields=["tenant"], search_fields=["code", "name"], ordering=["tenant__code", "code"],
    detail_template="rating/related_detail.html",
    detail_context=lambda request, p: _related(_("Bindings"), p.bindings.select_related("timing").order_by("id")),
))

register(ModelScreens(
    model=RatingPlanBinding, area=AREA, columns=["rating_plan__code", "destination_rate_code", "timing__code",
                                                 "weight"],
    form_class=BindingForm, create=services.create_binding, update=services.update_binding,
    form_sample=_binding_sample,
    filterset_fields=["rating_plan"], ordering=["rating_plan__code", "id"], menu=False,
    actions=[Action("remove", _("Remove"), "rating.delete_ratingplanbinding", _remove, danger=True,
                    confirm=_("The binding is removed from its rating plan: usage rated from now on no longer "
                              "uses it."))],
))

register(ModelScreens(
    model=RatingProfile, area=AREA,
    columns=["tenant__code", "category", "subject", "activation_time", "rating_plan__code", "fallback_subjects"],
    form_class=RatingProfileForm, create=services.create_rating_profile, update=services.update_rating_profile,
    form_sample=lambda view, obj, user: {"category": "call", "subject": "suite_subject"} if view == "add" else {},
    archive=services.archive, filterset_fields=["tenant", "category"], search_fields=["subject", "category"],
    ordering=["tenant__code", "category", "subject", "activation_time"],
))

register(ModelScreens(
    model=TariffRating, area=AREA, columns=["tariff__code", "tenant__code", "subject", "rating_plan__code",
                                            "categories"],
    form_class=TariffRatingForm, create=services.create_tariff_rating, update=services.update_tariff_rating,
    form_sample=_tariff_rating_sample,
    archive=services.archive_record, filterset_fields=["tenant"], search_fields=["tariff__code"],
    ordering=["tariff__code"], menu_label=_("Tariffs' rating"),
))

register(ModelScreens(
    model=Bundle, area=AREA, columns=["tariff__code", "code", "name", "usage_type", "allowance", "period",
                                      "destinations"],
    form_class=BundleForm, create=services.create_bundle, update=services.update_bundle,
    form_sample=lambda view, obj, user: {"usage_type": "data", "allowance": "10MB"} if view == "add" else {},
    archive=services.archive_record, filterset_fields=["usage_type", "period"], search_fields=["code", "name",
                                                                                                  "tariff__code"],
    ordering=["tariff__code", "code"], menu_label=_("Bundles (free units)"),
    formats={"allowance": lambda b: format_usage(b.allowance, b.usage_type)},
))

register(ModelScreens(
    model=BundleCounter, area=AREA, columns=["subscription", "bundle", "period_start", "used", "updated_at"],
    filterset_fields=["bundle", "period_start"], search_fields=["subscription__number"],
    ordering=["-period_start"], menu_label=_("Free units used"),
    formats={"used": lambda c: format_usage(c.used, c.bundle.usage_type)},
))

register(ModelScreens(
    model=UsageType, area=AREA, columns=["code", "name", "measure", "split_by_time"], form_class=UsageTypeForm,
    create=services.create_usage_type, update=services.update_usage_type, archive=services.archive_record,
    ordering=["code"],
))

register(ModelScreens(
    model=UsageFormat, area=AREA, columns=["code", "name"], form_class=UsageFormatForm,
    create=services.create_usage_format, update=services.update_usage_format, archive=services.archive_record,
    form_sample=_usage_format_sample,
    search_fields=["code", "name"], ordering=["code"],
))

register(ModelScreens(
    model=UsageBatch, area=AREA,
    columns=["started_at", "kind", "file_name", "format_code", "status", "read", "rated", "rejected", "duplicates",
             "charged", "charged_online"],
    filterset_fields=["kind", "status"], search_fields=["file_name", "actor"], ordering=["-started_at"],
    menu_label=_("Usage imports"), detail_template="rating/batch_detail.html",
    detail_context=lambda request, b: {"reasons": sorted((b.reasons or {}).items()),
                                       "adds_up": b.read == b.rated + b.rejected + b.duplicates},
))

RECORD_COLUMNS = ["start_time", "subject", "destination", "usage_type", "usage", "cost", "currency",
                  "billing_account__number", "matched_destination", "free_units"]

register(ModelScreens(
    model=RatedUsage, area=AREA, columns=RECORD_COLUMNS,
    filterset_fields=["usage_type", "payment_mode", "batch"], search_fields=["subject", "destination", "record_id"],
    ordering=["-id"], menu_label=_("Rated usage"),  # newest imported first: the primary key (no sort of millions)
    formats=RECORD_FORMATS,
    queryset=lambda request: RatedUsage.objects.select_related("billing_account"),  # one query for the page
))

register(ModelScreens(
    model=RejectedUsage, area=AREA, columns=["line_no", "reason", "message", "subject", "destination", "start_time",
                                             "usage", "attempts"],
    filterset_fields=["reason", "batch"], search_fields=["subject", "record_id", "message"],
    ordering=["-id"], menu_label=_("Rejected usage"),
    formats=RECORD_FORMATS,
    actions=[Action("correct", _("Correct and reprocess"), "rating.reprocess_usage", _correct, form_class=CorrectForm),
             Action("reprocess", _("Reprocess"), "rating.reprocess_usage", _reprocess)],
))

register(ModelScreens(
    model=RerateRun, area=AREA, columns=["started_at", "date_from", "date_to", "records", "changed", "difference",
                                         "transfers"],
    ordering=["-started_at"], menu_label=_("Re-ratings"), detail_template="rating/related_detail.html",
    detail_context=lambda request, r: _related(_("Changed records (old → new cost)"),
                                               r.lines.select_related("record").order_by("id")[:500]),
))

register_page(Page("rating:calculator", _("Cost calculator"), AREA, "rating.calculate"))
register_page(Page("rating:cgrates", _("CGRateS tariff plans"), AREA, "rating.import_plan"))
register_page(Page("rating:prefix_upload", _("Upload a prefix table"), AREA, "rating.add_destinationprefix"))
register_page(Page("rating:usage_import", _("Import usage"), AREA, "rating.add_usagebatch"))
register_page(Page("rating:rerate", _("Re-rate a period"), AREA, "rating.rerate_usage"))
