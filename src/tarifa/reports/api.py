"""The reports' API: `GET /api/v1/reports/` (the reports the caller may open) and, per report,
`GET /api/v1/reports/<code>/?from=&to=&…` → `{"rows", "totals"}`, `&format=csv|xlsx` the same rows
as a file. Each report's endpoint checks the report's own permission."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from tarifa.web.api import register_endpoint

from . import exports, framework
from .framework import all_reports

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return exports.csv_bytes(renderer_context["view"].report_result)


class XLSXRenderer(BaseRenderer):
    media_type = XLSX
    format = "xlsx"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return exports.xlsx_bytes(renderer_context["view"].report_result)


def describe(report) -> dict:
    return {"code": report.code, "name": report.name, "description": report.description,
            "parameters": [{"name": p.name, "label": p.label, "type": p.kind} for p in report.all_params],
            "columns": [{"name": c.name, "label": c.label, "type": c.type} for c in report.columns]}


class ReportListAPI(APIView):
    """The reports the caller may open: code, name, parameters and columns."""

    required_permission = "reports.view_reports"

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}})
    def get(self, request):
        return Response([describe(r) for r in all_reports() if request.user.has_perm(r.permission)])


class ReportAPI(APIView):
    report: framework.Report = None
    renderer_classes = [JSONRenderer, CSVRenderer, XLSXRenderer]

    def get(self, request):
        params = framework.parse_params(self.report, request.query_params)
        self.report_result = framework.run(self.report, params)
        rows = framework.sort_rows(self.report, self.report_result.rows, request.query_params.get("sort"))
        self.report_result.rows = rows
        response = Response({"rows": framework.json_rows(self.report, rows),
                             "totals": framework.json_totals(self.report, self.report_result.totals)})
        fmt = request.query_params.get("format")
        if fmt in ("csv", "xlsx"):
            response["Content-Disposition"] = f'attachment; filename="{filename(self.report, params, fmt)}"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400:
            # Errors are always the JSON error body, whatever file was asked for.
            response.accepted_renderer, response.accepted_media_type = JSONRenderer(), "application/json"
        return response


def filename(report, params, fmt) -> str:
    period = f"_{params['from']}_{params['to']}" if "from" in params else ""
    return f"{report.code}{period}.{fmt}"


def _schema_params(report):
    out = []
    for p in report.all_params:
        if p.kind == "date":
            out.append(OpenApiParameter(p.name, OpenApiTypes.DATE, description=f"{p.label} (YYYY-MM-DD)"))
        else:
            out.append(OpenApiParameter(p.name, OpenApiTypes.STR, description=p.label))
    out.append(OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv", "xlsx"],
                                description="json (default), csv or xlsx: the same rows as a file"))
    out.append(OpenApiParameter("sort", OpenApiTypes.STR, description="a column's name; -name for descending"))
    return out


def view_for(report):
    def get(self, request):
        return ReportAPI.get(self, request)

    cls = type(f"Report_{report.code.replace('-', '_')}", (ReportAPI,), {
        "report": report, "required_permission": report.permission, "__doc__": report.description, "get": get,
    })
    cls.get = extend_schema(operation_id=f"report_{report.code.replace('-', '_')}", parameters=_schema_params(report),
                            responses={200: OpenApiTypes.OBJECT}, summary=report.name)(cls.get)
    return cls


register_endpoint("reports/", ReportListAPI.as_view(), "reports", "reports.view_reports")
for _report in all_reports():
    register_endpoint(f"reports/{_report.code}/", view_for(_report).as_view(), f"report-{_report.code}",
                      _report.permission)
