"""Compile gettext catalogs (.po → .mo) in Python, so that building Tarifa needs no GNU gettext.

`python -m tarifa.kernel.msgfmt` compiles every `locale/*/LC_MESSAGES/*.po` under the tarifa
package whose .mo is missing or older (`make run` / `make test` do; so does the test suite's
start, tests/conftest). The .mo files are build output, not kept in git. Handles what Django's
catalogs use: msgctxt, plural forms, multi-line strings, the escapes \\n \\t \\" \\\\; fuzzy
entries are left out (as msgfmt does by default).
"""

import ast
import os
import struct
import sys
import tempfile
from pathlib import Path


def parse_po(text: str) -> dict[str, str]:
    """{msgid (with "ctxt\\x04" and plural "\\x00" joining, as in .mo): translation}."""
    entries: dict[str, str] = {}
    current: dict = {}
    field = None
    fuzzy = False

    def flush():
        nonlocal current, fuzzy
        if "msgid" in current and not fuzzy:
            key = current["msgid"]
            if "msgid_plural" in current:
                key += "\x00" + current["msgid_plural"]
                value = "\x00".join(current.get(f"msgstr[{i}]", "") for i in range(len(
                    [k for k in current if k.startswith("msgstr[")])))
            else:
                value = current.get("msgstr", "")
            if "msgctxt" in current:
                key = current["msgctxt"] + "\x04" + key
            if value or key == "":
                entries[key] = value
        current, fuzzy = {}, False

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                flush()
                fuzzy = True
            continue
        if line.startswith('"'):
            current[field] += ast.literal_eval(line)
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgid", "msgctxt") and ("msgstr" in current or any(k.startswith("msgstr[") for k in current)):
            was_fuzzy = fuzzy
            flush()
            fuzzy = was_fuzzy if keyword == "msgctxt" or "msgid" not in current else fuzzy
        field = keyword
        current[field] = ast.literal_eval(rest)
    flush()
    return entries


def compile_mo(entries: dict[str, str]) -> bytes:
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    start = 7 * 4
    ids_table = start
    strs_table = ids_table + 8 * n
    data = strs_table + 8 * n
    offsets = []
    blob = b""
    for value in ids:
        offsets.append((len(value), data + len(blob)))
        blob += value + b"\0"
    for value in strs:
        offsets.append((len(value), data + len(blob)))
        blob += value + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, ids_table, strs_table, 0, 0)
    table = b"".join(struct.pack("<2I", *o) for o in offsets)
    return header + table + blob


def compile_file(po: Path) -> Path:
    mo = po.with_suffix(".mo")
    content = compile_mo(parse_po(po.read_text(encoding="utf-8")))
    fd, tmp = tempfile.mkstemp(dir=po.parent, suffix=".mo.tmp")
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(tmp, mo)  # atomic: parallel test processes never read half a file
    return mo


def compile_all(root: Path | None = None, *, force: bool = False) -> list[Path]:
    root = root or Path(__file__).resolve().parent.parent
    done = []
    for po in sorted(root.glob("**/locale/*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if force or not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            done.append(compile_file(po))
    return done


if __name__ == "__main__":
    for path in compile_all(force="--force" in sys.argv):
        print(f"compiled {path}")
