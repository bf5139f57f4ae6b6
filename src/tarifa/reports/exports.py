"""A report's rows as a file: CSV (web.csvexport.SafeWriter: no formulas) and XLSX (XlsxWriter in
constant-memory mode: numbers as numbers, dates as dates, money with its currency in its own column)."""

import io
from decimal import Decimal

from tarifa.kernel.money import CURRENCIES
from tarifa.web.csvexport import SafeWriter

from .framework import COUNT, DATE, DURATION, MONEY, BYTES, NUMBER, PERCENT, Result, exact


def csv_bytes(result: Result) -> bytes:
    report = result.report
    stream = io.StringIO()
    writer = SafeWriter(stream)
    writer.writerow([c.label for c in report.columns])
    for row in result.rows:
        out = []
        for c in report.columns:
            v = row.get(c.name)
            if v is None:
                out.append("")
            elif c.type == MONEY:
                out.append(exact(v, row.get(c.currency)))
            elif c.type == DATE:
                out.append(v.isoformat())
            elif c.type in (COUNT, DURATION, BYTES):
                out.append(int(v))
            elif c.type in (NUMBER, PERCENT) and isinstance(v, Decimal):
                out.append(format(v.normalize(), "f"))
            else:
                out.append(v)
        writer.writerow(out)
    return stream.getvalue().encode("utf-8")


def xlsx_bytes(result: Result) -> bytes:
    import xlsxwriter

    report = result.report
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"constant_memory": True, "in_memory": False,
                                        "strings_to_formulas": False, "strings_to_urls": False})
    sheet = book.add_worksheet(report.code[:31])
    bold = book.add_format({"bold": True})
    date_fmt = book.add_format({"num_format": "yyyy-mm-dd"})
    int_fmt = book.add_format({"num_format": "#,##0"})
    num_fmt = book.add_format({"num_format": "#,##0.####"})
    money_fmts = {}

    def money_fmt(cur):
        places = CURRENCIES.get(cur or "", 2)
        if places not in money_fmts:
            money_fmts[places] = book.add_format({"num_format": "#,##0" + ("." + "0" * places if places else "")})
        return money_fmts[places]

    for i, c in enumerate(report.columns):
        sheet.write_string(0, i, c.label, bold)
        sheet.set_column(i, i, 14 if c.type != "text" else 22)
    for r, row in enumerate(result.rows, start=1):
        for i, c in enumerate(report.columns):
            v = row.get(c.name)
            if v is None:
                sheet.write_blank(r, i, None)
            elif c.type == MONEY:
                sheet.write_number(r, i, float(v), money_fmt(row.get(c.currency)))
            elif c.type == DATE:
                sheet.write_datetime(r, i, v, date_fmt)
            elif c.type in (COUNT, DURATION, BYTES):
                sheet.write_number(r, i, int(v), int_fmt)
            elif c.type in (NUMBER, PERCENT):
                sheet.write_number(r, i, float(v), num_fmt)
            else:
                sheet.write_string(r, i, str(v))
    book.close()
    return buffer.getvalue()
