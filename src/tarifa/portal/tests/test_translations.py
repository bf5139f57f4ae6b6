"""Every string the portal's templates and code mark for translation has its Russian
translation, and the catalog compiles (tarifa.kernel.msgfmt: .po → .mo without GNU gettext)."""

import ast
import gettext
import re
from pathlib import Path

from tarifa.kernel import msgfmt

PORTAL = Path(__file__).resolve().parent.parent
STAFF_ONLY = PORTAL / "screens.py", PORTAL / "models.py"  # the operator's screens are in English


def marked() -> set[str]:
    found = set()
    for path in PORTAL.glob("templates/portal/*.html"):
        if path.name == "customer_panel.html":  # a panel of the operator's customer page
            continue
        text = path.read_text()
        found |= set(re.findall(r'{% translate "([^"]+)" %}', text))
        for body in re.findall(r"{% blocktranslate[^%]*%}(.*?){% endblocktranslate %}", text, re.S):
            found.add(re.sub(r"{{ (\w+) }}", r"%(\1)s", body))
    for path in PORTAL.glob("*.py"):
        if path in STAFF_ONLY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_" and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.add(node.args[0].value)
    return found


def test_every_portal_string_has_a_russian_translation():
    po = PORTAL / "locale/ru/LC_MESSAGES/django.po"
    catalog = msgfmt.parse_po(po.read_text(encoding="utf-8"))
    missing = sorted(marked() - set(catalog))
    assert not missing, f"add to {po}: {missing}"


def test_the_compiled_catalog_reads_back(tmp_path):
    po = PORTAL / "locale/ru/LC_MESSAGES/django.po"
    mo = tmp_path / "django.mo"
    mo.write_bytes(msgfmt.compile_mo(msgfmt.parse_po(po.read_text(encoding="utf-8"))))
    with mo.open("rb") as f:
        ru = gettext.GNUTranslations(f)
    assert ru.gettext("My services") == "Мои услуги"
    assert ru.gettext("Hello, %(name)s") == "Здравствуйте, %(name)s"
