"""CSV files meant for people (list exports, voucher cards): one writer that defuses formulas.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or a
carriage return) as a formula: a customer named `=HYPERLINK("http://…","Click")` would put
a live link into the operator's spreadsheet. Such text cells are written with a leading
apostrophe, which spreadsheets show as text. Numbers (Decimal, int, and number-like text
such as "-4.50") are written as they are.
"""

import csv
import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose text cells cannot start a formula."""

    def __init__(self, stream, **kwargs):
        self._writer = csv.writer(stream, **kwargs)

    def writerow(self, row):
        return self._writer.writerow([safe_cell(v if not hasattr(v, "__html__") else str(v)) for v in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
