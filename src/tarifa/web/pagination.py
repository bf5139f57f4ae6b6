"""Pagination that never counts a large table: "next page" pages and a bounded count.

A list page (and an API list) fetches one row more than the page to know whether there is a
next page, and counts the matching rows only up to TARIFA_LIST_COUNT_LIMIT (default 10,000):
`SELECT count(*) FROM (… LIMIT 10001)`, which stops there. Above it, the total is the
planner's estimate (EXPLAIN, no rows read), shown as "about N". So a list of 2 million
transfers answers as fast as one of 200.

UI: `paginate(queryset, page_number, per_page)` -> `ListPage` (the attributes templates use of
Django's Page: number, object_list, has_next, has_previous, next_page_number,
previous_page_number, start_index, end_index, paginator.count, paginator.num_pages, plus
`count_exact`). API: `Pagination` (REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS): `?page=N`,
`?page_size=N` (≤ 1000); the answer is {"count", "count_exact", "next", "previous",
"results"}, `count` exact up to the limit, else the estimate with `count_exact: false`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections
from django.utils.translation import gettext as _
from rest_framework import exceptions, pagination
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param


def count_limit() -> int:
    return int(getattr(settings, "TARIFA_LIST_COUNT_LIMIT", 10_000))


def bounded_count(queryset, limit: int | None = None) -> int | None:
    """The number of rows of `queryset` if at most `limit`, else None (never reads past limit + 1)."""
    limit = count_limit() if limit is None else limit
    n = queryset.order_by()[: limit + 1].count()
    return n if n <= limit else None


def estimate(queryset) -> int:
    """The planner's estimate of the rows of `queryset` (EXPLAIN; reads no rows)."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def total(queryset) -> tuple[int, bool]:
    """(count, exact): exact up to the limit, the planner's estimate above it (at least limit + 1)."""
    exact = bounded_count(queryset)
    if exact is not None:
        return exact, True
    return max(estimate(queryset), count_limit() + 1), False


@dataclass
class _Paginator:
    count: int
    per_page: int
    count_exact: bool

    @property
    def num_pages(self) -> int:
        return max(1, math.ceil(self.count / self.per_page))


@dataclass
class ListPage:
    number: int
    per_page: int
    object_list: list = field(default_factory=list)
    has_next: bool = False
    paginator: _Paginator | None = None

    @property
    def count_exact(self) -> bool:
        return self.paginator.count_exact

    def has_previous(self) -> bool:
        return self.number > 1

    def has_other_pages(self) -> bool:
        return self.has_next or self.number > 1

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        return self.number - 1

    def start_index(self) -> int:
        return 0 if not self.object_list else (self.number - 1) * self.per_page + 1

    def end_index(self) -> int:
        return (self.number - 1) * self.per_page + len(self.object_list)

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self):
        return len(self.object_list)


def page_number(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return max(1, number)


def paginate(queryset, number, per_page: int) -> ListPage:
    """One page of `queryset` (page `number`, from 1), reading per_page + 1 rows."""
    number = page_number(number)
    offset = (number - 1) * per_page
    rows = list(queryset[offset: offset + per_page + 1])
    if not rows and number > 1:  # past the end: the last page when counted, else the first
        count, exact = total(queryset)
        return paginate(queryset, max(1, math.ceil(count / per_page)) if exact else 1, per_page)
    count, exact = total(queryset) if number == 1 or rows else (0, True)
    if exact:
        count = max(count, offset + min(len(rows), per_page))
    return ListPage(number=number, per_page=per_page, object_list=rows[:per_page], has_next=len(rows) > per_page,
                    paginator=_Paginator(count=count, per_page=per_page, count_exact=exact))


class Pagination(pagination.BasePagination):
    """The API's pagination: `?page=N&page_size=M`, or `?limit=M&offset=K`; at most
    `max_page_size` items; {"count", "count_exact", "next", "previous", "results"}. A value that
    is not a positive whole number, a size over the maximum, or the two styles mixed answer 400
    naming the parameter. Never a COUNT(*) of a large table: one row more than the page tells
    whether there is a next one, and `count` is exact up to the limit, else the estimate."""

    page_size_query_param = "page_size"
    page_query_param = "page"
    max_page_size = 1000
    limit_query_param, offset_query_param = "limit", "offset"
    query_params = ("page", "page_size", "limit", "offset")

    @property
    def page_size(self) -> int:
        return int(settings.REST_FRAMEWORK.get("PAGE_SIZE") or 50)

    @staticmethod
    def _whole(request, name, minimum):
        raw = request.query_params.get(name)
        if raw is None:
            return None
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
            raise exceptions.ValidationError({name: [_("A whole number.")]})
        value = int(raw)
        if value < minimum:
            raise exceptions.ValidationError({name: [_("At least %(min)s.") % {"min": minimum}]})
        return value

    def get_page_size(self, request):
        sizes = {name: self._whole(request, name, 1) for name in (self.page_size_query_param, self.limit_query_param)}
        given = {name: value for name, value in sizes.items() if value is not None}
        if len(given) > 1:
            raise exceptions.ValidationError({self.limit_query_param: [_("Give page_size or limit, not both.")]})
        for name, value in given.items():
            if value > self.max_page_size:
                raise exceptions.ValidationError({name: [_("At most %(max)s.") % {"max": self.max_page_size}]})
            return value
        return self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.offset = self._whole(request, self.offset_query_param, 0)
        limit_style = self.offset is not None or self.limit_query_param in request.query_params
        if limit_style and self.page_query_param in request.query_params:
            raise exceptions.ValidationError({self.page_query_param: [_("Give page or offset/limit, not both.")]})
        size = self.get_page_size(request)
        if limit_style:
            self.limit, self.number, offset = size, None, self.offset or 0
        else:
            self.limit, self.number = None, self._whole(request, self.page_query_param, 1) or 1
            offset = (self.number - 1) * size
        self.size, self.offset = size, offset
        rows = list(queryset[offset: offset + size + 1])
        if not rows and self.number is not None and self.number > 1:
            raise NotFound("Invalid page.")
        self.has_next = len(rows) > size
        count, exact = total(queryset)
        if exact:
            count = max(count, offset + min(len(rows), size))
        self.count, self.count_exact = count, exact
        return rows[:size]

    def _url(self, **params):
        url = self.request.build_absolute_uri()
        for name, value in params.items():
            url = remove_query_param(url, name) if value is None else replace_query_param(url, name, value)
        return url

    def get_next_link(self):
        if not self.has_next:
            return None
        if self.limit is not None:
            return self._url(limit=self.limit, offset=self.offset + self.limit)
        return self._url(page=self.number + 1)

    def get_previous_link(self):
        if self.limit is not None:
            return None if self.offset <= 0 else self._url(limit=self.limit, offset=max(self.offset - self.limit, 0))
        if self.number <= 1:
            return None
        return self._url(page=None if self.number == 2 else self.number - 1)

    def get_paginated_response(self, data):
        return Response({"count": self.count, "count_exact": self.count_exact, "next": self.get_next_link(),
                         "previous": self.get_previous_link(), "results": data})

    def get_paginated_response_schema(self, schema):
        return {"type": "object", "required": ["count", "results"], "properties": {
            "count": {"type": "integer", "description": "Exact up to 10,000 matching records, else the "
                                                        "planner's estimate (count_exact false)."},
            "count_exact": {"type": "boolean"},
            "next": {"type": "string", "nullable": True, "format": "uri"},
            "previous": {"type": "string", "nullable": True, "format": "uri"},
            "results": schema}}

    def get_schema_operation_parameters(self, view):
        parameters = [
            {"name": self.page_query_param, "required": False, "in": "query",
             "description": "A page number within the paginated result set.", "schema": {"type": "integer",
                                                                                         "minimum": 1}},
            {"name": self.page_size_query_param, "required": False, "in": "query",
             "description": "Number of results to return per page.",
             "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size}}]
        for name, text in ((self.limit_query_param, f"Number of results (at most {self.max_page_size}); with offset."),
                           (self.offset_query_param, "Index of the first result; with limit.")):
            parameters.append({"name": name, "required": False, "in": "query", "description": text,
                               "schema": {"type": "integer", "minimum": 0 if name == "offset" else 1}})
        return parameters
