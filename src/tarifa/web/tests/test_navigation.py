"""The menu by the operator's jobs (issue 10): eight groups instead of ~80 flat entries, every screen
placed, a list's heading equal to its menu label, only what the user may open."""

import html as htmllib
import re

import pytest

import tarifa.urls  # noqa: F401  (registers every app's screens and pages)
from tarifa.web import navigation, registry

GROUPS = ["Front office", "Cash desk", "Billing", "Network", "Warehouse", "Catalog", "Reports and checks", "Administration"]


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_menu_is_grouped_by_the_operators_jobs(admin):
    groups = admin.get("/").context["nav_groups"]
    assert [g["label"] for g in groups] == GROUPS
    entries = {label: url for g in groups for _s, items in g["sections"] for label, url in items}
    front = [label for _s, items in groups[0]["sections"] for label, _u in items]
    assert front[:3] == ["Customers", "Subscriptions", "Billing accounts"]
    cash = [label for _s, items in groups[1]["sections"] for label, _u in items]
    assert "Cashier" in cash and "Payment journal" in cash
    # every registered screen in the menu and every page is reachable from it, once
    for s in registry.all_screens():
        if s.menu:
            assert s.url("list") in entries.values(), s.url_name("list")
    urls = [url for g in groups for _s, items in g["sections"] for _l, url in items]
    assert len(urls) == len(set(urls))
    html = admin.get("/").content.decode()
    assert html.count('<details class="menu-group"') == len(GROUPS)


def test_a_list_heading_equals_its_menu_label(admin):
    groups = admin.get("/").context["nav_groups"]
    wrong = []
    for g in groups:
        for _section, items in g["sections"]:
            for label, url in items:
                response = admin.get(url)
                assert response.status_code == 200, url
                h1 = re.search(r"<h1[^>]*>(.*?)</h1>", response.content.decode(), re.S).group(1)
                heading = htmllib.unescape(re.sub(r"<[^>]+>|\s+", " ", h1)).strip()
                if heading != label:
                    wrong.append((url, label, heading))
    assert wrong == []


def test_only_what_the_user_may_open(client, make_user):
    client.force_login(make_user("identity.view_user", "crm.view_customer", username="few", password=None))
    groups = client.get("/").context["nav_groups"]
    assert [(g["label"], [label for _s, items in g["sections"] for label, _u in items]) for g in groups] == [
        ("Front office", ["Customers"]), ("Administration", ["Users"])]


def test_a_new_screen_joins_the_group_of_its_area():
    assert navigation.AREA_GROUPS["Customers"] == navigation.FRONT_OFFICE
    placed = {name for _g, entries in navigation.MENU for name, _l, _s in entries}
    known = {s.url_name("list") for s in registry.all_screens()} | {p.name for p in registry.all_pages()}
    assert placed <= known, placed - known  # no stale entries
