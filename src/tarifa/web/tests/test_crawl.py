"""The crawler: every page an operator reaches by following links answers without a server error.

The permission suite opens each registered screen once with one record; the form suite submits
each form. This test does what an operator does between the two: starting at the dashboard (and
so at the menu), it follows every same-site link breadth-first — lists and their sort, filter and
pagination links, detail pages, action and edit pages, exports and documents — on the full demo
data, as a superuser and as the demo's cashier (a front-office role). Only GET: no form is
submitted and logout is never followed.

Every response must be below 500; a download (PDF, CSV, …) must answer 200; an HTML page must not
show raw template syntax or a Python repr. To stay fast, URLs are deduplicated by pattern (ids
replaced): at most `PER_PATTERN` records per detail-like path and `PER_QUERY_SHAPE` query-string
variants per path and set of query parameters.
"""

import html as htmllib
import re
import time
from collections import deque
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import pytest
from django.db import transaction
from django.urls import reverse

PER_PATTERN = 2  # records opened per path pattern (detail, edit, action pages of one model)
PER_QUERY_SHAPE = 3  # query-string variants per path and set of parameter names (sort columns, pages)
MAX_PAGES = 3000  # a safety net against a link generator gone wild; reaching it fails the test

ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<=/)\d+(?=/)", re.I)
# What a page must never show: template syntax that was not rendered, a Python repr, a traceback.
RAW = re.compile(
    r"\{\{\s*[A-Za-z_][\w.]*\s*(\|[^}]*)?\}\}"
    r"|\{%\s*(if|for|url|block|endif|endfor|endblock|trans|translate|blocktranslate|with|load|include|"
    r"csrf_token|else|elif|static|extends)\b"
    r"|&lt;bound method|&lt;function |object at 0x[0-9a-f]+|Traceback \(most recent call last\)"
    r"|TemplateSyntaxError|VariableDoesNotExist|NoReverseMatch")
SCRIPT = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def links_of(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.hrefs


def raw_syntax_in_data() -> set[str]:
    """Template syntax that is data (notification and document templates an operator edits, the
    audit trail of their changes, help texts explaining them): shown as text, not a rendering failure."""
    from django.apps import apps
    from django.db import models
    from django.db.models.functions import Cast

    found = set()
    for model in apps.get_models():
        if not model.__module__.startswith("tarifa."):
            continue
        for field in model._meta.concrete_fields:
            found.update(m.group(0) for m in RAW.finditer(str(field.help_text)))
            if getattr(field, "secret", False):  # kernel.secrets: ciphertext, never shown, cannot be filtered
                continue
            if isinstance(field, (models.CharField, models.TextField)):
                values = model._default_manager.filter(**{f"{field.attname}__contains": "{"}).values_list(
                    field.attname, flat=True)
            elif isinstance(field, models.JSONField):
                values = (model._default_manager.annotate(_text=Cast(field.attname, models.TextField()))
                          .filter(_text__contains="{").values_list("_text", flat=True))
            else:
                continue
            for value in values:
                found.update(m.group(0) for m in RAW.finditer(value.replace('\\"', '"')))
    return found


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo data set, loaded once in a transaction rolled back at the end of the module."""
    from django.contrib.auth import get_user_model

    from tarifa.web.demo_loader import load_demo

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            load_demo(actor="demo")
            users = get_user_model().objects
            yield {"data": raw_syntax_in_data(),
                   "superuser": users.create(username="crawl-superuser", is_superuser=True),
                   # The demo's front office: a cashier (payments' demo role "Cashiers").
                   "cashier": users.get(username="carla.cashier")}
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


class Crawl:
    def __init__(self, client, data):
        self.client = client
        self.data = data
        self.skip = (reverse("web:logout"), "/static/", "/media/")
        self.seen: set[str] = set()
        self.patterns: dict[str, int] = {}
        self.shapes: dict[tuple, int] = {}
        self.visited = 0
        self.errors: list[str] = []
        self.client_errors: list[str] = []

    def admit(self, url: str) -> str | None:
        """The URL to fetch (same site, no fragment), or None: off-site, skipped or over budget."""
        parts = urlsplit(url)
        if parts.scheme not in ("", "http", "https") or parts.netloc not in ("", "testserver"):
            return None
        if not parts.path.startswith("/") or parts.path.startswith(self.skip):
            return None
        # by name only (a stable sort): a repeated parameter keeps its order, the last one wins
        query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True), key=lambda kv: kv[0]))
        url = parts.path + (f"?{query}" if query else "")
        if url in self.seen:
            return None
        pattern = ID.sub("<id>", parts.path)
        if pattern != parts.path and self.patterns.get(pattern, 0) >= PER_PATTERN:
            return None
        shape = (pattern, tuple(sorted({k for k, _v in parse_qsl(query, keep_blank_values=True)})))
        if query and self.shapes.get(shape, 0) >= PER_QUERY_SHAPE:
            return None
        self.seen.add(url)
        if pattern != parts.path and not query:
            self.patterns[pattern] = self.patterns.get(pattern, 0) + 1
        if query:
            self.shapes[shape] = self.shapes.get(shape, 0) + 1
        return url

    def run(self, start: str, who: str):
        queue = deque([(self.admit(start), "start")])
        while queue:
            url, source = queue.popleft()
            assert self.visited < MAX_PAGES, f"more than {MAX_PAGES} pages reached: tighten the crawl's bounds"
            self.visited += 1
            try:
                with transaction.atomic():  # a failing view must not break the module's transaction
                    response = self.client.get(url)
                    body = b"".join(response.streaming_content) if response.streaming else response.content
            except Exception as exc:  # the test client re-raises what the view raised: a 500
                self.errors.append(f"{who}: GET {url} (linked from {source}) raised {exc.__class__.__name__}: {exc}")
                continue
            status, kind = response.status_code, response.get("Content-Type", "")
            if status >= 500:
                self.errors.append(f"{who}: GET {url} (linked from {source}) answered {status}")
                continue
            if status in (301, 302, 303, 307, 308):
                target = self.admit(urljoin(url, response["Location"]))
                if target and not target.startswith(reverse("web:login")):
                    queue.append((target, url))
                continue
            if not kind.startswith("text/html"):
                if status != 200:
                    self.errors.append(f"{who}: GET {url} (linked from {source}, {kind}) answered {status}")
                elif not body:
                    self.errors.append(f"{who}: GET {url} (linked from {source}, {kind}) is empty")
                continue
            if status >= 400:
                self.client_errors.append(f"{who}: GET {url} (linked from {source}) answered {status}")
            html = body.decode()
            raw = [m.group(0) for m in RAW.finditer(SCRIPT.sub("", html))
                   if htmllib.unescape(m.group(0)) not in self.data]
            if raw:
                self.errors.append(f"{who}: GET {url} (linked from {source}) shows {raw[0]!r}")
            for href in links_of(html):
                target = self.admit(urljoin(url, href))
                if target:
                    queue.append((target, url))


@pytest.mark.parametrize("who", ["superuser", "cashier"])
def test_every_linked_page_answers_without_a_server_error(who, demo, client, db):
    client.force_login(demo[who])
    crawl = Crawl(client, demo["data"])
    started = time.monotonic()
    crawl.run(reverse("web:dashboard"), who)
    elapsed = time.monotonic() - started
    print(f"\ncrawl as {who}: {crawl.visited} pages in {elapsed:.1f} s; "
          f"{len(crawl.client_errors)} answered 4xx, {len(crawl.errors)} failed")
    for line in crawl.client_errors:
        print("  4xx:", line)
    by_pattern: dict[str, int] = {}
    for url in crawl.seen:
        key = ID.sub("<id>", urlsplit(url).path)
        by_pattern[key] = by_pattern.get(key, 0) + 1
    print("  busiest paths:", sorted(by_pattern.items(), key=lambda kv: -kv[1])[:8])
    assert crawl.visited > (100 if who == "superuser" else 5), "the crawl reached too few pages"
    assert not crawl.errors, "\n".join(crawl.errors)
