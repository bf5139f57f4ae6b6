"""`make run` stays readable: rendering a PDF logs no font-subsetting chatter (fontTools and
WeasyPrint log every subset glyph table at INFO; the settings keep them at WARNING)."""

import logging

import weasyprint


def test_rendering_a_pdf_logs_nothing_below_warning_from_fonttools_or_weasyprint(caplog):
    assert logging.getLogger().getEffectiveLevel() <= logging.INFO  # the settings' root level
    pdf = weasyprint.HTML(string="<h1>Invoice HQ-I0000001</h1><p>Total 39.00 USD — ÄÖÜ ñ ©</p>").write_pdf()
    assert pdf.startswith(b"%PDF")
    noisy = [r for r in caplog.records if r.name.split(".")[0] in ("fontTools", "weasyprint")
             and r.levelno < logging.WARNING]
    assert noisy == []


def test_pdf_fonts_are_subset_by_harfbuzz_without_a_warning(caplog):
    """`make pdf-deps` installs HarfBuzz's subsetter; without it WeasyPrint warns on every PDF."""
    weasyprint.HTML(string="<p>Credit note HQ-I0000002 — 4.00 USD</p>").write_pdf()
    assert [r.getMessage() for r in caplog.records if "HarfBuzz" in r.getMessage()] == []
