"""In a real browser, on the demo data: the dashboard's figures, a report filtered and downloaded."""

import openpyxl
import pytest

from tarifa.testing.browser import login, menu

pytestmark = pytest.mark.browser

ADMIN_PASSWORD = "S3cure-pass-word"  # the admin_user fixture's


def test_dashboard_and_a_report_with_its_downloads(page, live_server, admin_user, tmp_path):
    from tarifa.testing.demo import restore_migration_rows
    from tarifa.web.demo_loader import load_demo

    restore_migration_rows()  # an earlier transactional test flushed the built-in usage types
    load_demo(actor="demo")
    login(page, live_server, "admin", ADMIN_PASSWORD)
    page.goto("/")
    tiles = page.locator(".card").all_inner_texts()
    assert any(t.startswith("Payments today") for t in tiles)
    assert page.locator(".card svg.chart").count() >= 1

    menu(page, "Reports")
    assert page.locator("h1").inner_text() == "Reports"
    page.get_by_role("link", name="Payments by channel").click()
    page.fill("#id_from", "2020-01-01")
    page.select_option("#id_currency", "USD")
    page.get_by_role("button", name="Show").click()
    assert "currency=USD" in page.url
    table = page.get_by_test_id("report-table")
    assert table.locator("tbody tr").count() >= 1
    assert "Cash" in table.inner_text()  # the channel in words
    assert "USD" in table.locator("tfoot").inner_text()
    assert page.locator("svg.chart").count() == 1

    page.get_by_role("link", name="Amount").click()  # sort by amount
    assert "sort=amount" in page.url

    with page.expect_download() as download:
        page.get_by_test_id("xlsx").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.startswith("payments-by-channel_2020-01-01_")
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert rows[0][:3] == ("Day", "Channel", "Currency")
    assert len(rows) - 1 == table.locator("tbody tr").count()
    assert all(isinstance(r[4], (int, float)) for r in rows[1:])

    with page.expect_download() as download:
        page.get_by_test_id("csv").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.splitlines()[0] == "Day,Channel,Currency,Payments,Amount,Reversed,Net"
