"""The reports' pages: the index (the reports the user may open, by group) and one page per report
(filter form, sortable table, totals, SVG chart, CSV and XLSX downloads)."""

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from tarifa.kernel.errors import DomainError
from tarifa.web.views import PermissionRequiredView

from . import exports, framework, svg
from .api import XLSX, filename

PAGE_ROWS = 1000


class ReportIndexView(PermissionRequiredView):
    permission = "reports.view_reports"

    def get(self, request):
        groups: dict[str, list] = {}
        for r in framework.all_reports():
            if request.user.has_perm(r.permission):
                groups.setdefault(r.group, []).append(r)
        return render(request, "reports/index.html", {"groups": groups})


class ReportView(PermissionRequiredView):
    report: framework.Report = None

    def required_permission(self):
        return self.report.permission

    def get(self, request):
        report = self.report
        try:
            params = framework.parse_params(report, request.GET, strict=False)
        except DomainError as exc:
            return render(request, "reports/report.html", self.context(request, None, {}, error=exc.message),
                          status=400)
        result = framework.run(report, params)
        result.rows = framework.sort_rows(report, result.rows, request.GET.get("sort"))
        fmt = request.GET.get("format")
        if fmt in ("csv", "xlsx"):
            body = exports.csv_bytes(result) if fmt == "csv" else exports.xlsx_bytes(result)
            response = HttpResponse(body, content_type="text/csv; charset=utf-8" if fmt == "csv" else XLSX)
            response["Content-Disposition"] = f'attachment; filename="{filename(report, params, fmt)}"'
            return response
        return render(request, "reports/report.html", self.context(request, result, params))

    def context(self, request, result, params, error=None):
        report = self.report
        fields = []
        for p in report.all_params:
            value = params.get(p.name)
            raw = request.GET.get(p.name, "")
            fields.append({"name": p.name, "label": p.label, "kind": p.kind,
                           "value": value.isoformat() if hasattr(value, "isoformat") else (value or raw or ""),
                           "choices": p.choices() if p.choices else None})
        query = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in params.items()}
        sort = request.GET.get("sort", "")
        rows = result.rows if result else []
        columns = [{"name": c.name, "label": c.label, "type": c.type, "currency": c.currency,
                    "sort": ("-" + c.name) if sort == c.name else c.name,
                    "sorted": sort.lstrip("-") == c.name, "desc": sort.startswith("-")} for c in report.columns]
        words = {c.name: c.labels() for c in report.columns if c.labels}
        table = [[{"value": words[c.name].get(row.get(c.name), row.get(c.name)) if c.name in words else row.get(c.name),
                   "type": c.type, "currency": row.get(c.currency)} for c in report.columns]
                 for row in rows[:PAGE_ROWS]]
        totals = []
        if result:
            for c in report.columns:
                t = result.totals.get(c.name)
                totals.append({"type": c.type, "value": t, "per_currency": sorted(t.items()) if isinstance(t, dict) else None})
        from urllib.parse import urlencode

        return {"report": report, "fields": fields, "columns": columns, "rows": table, "totals": totals,
                "has_totals": bool(result and result.totals), "count": len(rows), "truncated": len(rows) > PAGE_ROWS,
                "page_rows": PAGE_ROWS, "error": error,
                "chart": mark_safe(svg.report_chart(report, rows)) if result and report.chart else "",
                "query": urlencode({k: v for k, v in query.items() if v not in (None, "")}),
                "query_sorted": urlencode({**{k: v for k, v in query.items() if v not in (None, "")},
                                           **({"sort": sort} if sort else {})})}
