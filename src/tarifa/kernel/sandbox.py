"""Operator-written templates (documents, notifications) rendered in a sandbox.

Whoever may edit a document or notification template must not reach beyond the data of
the document: not the file system, not other templates, not the records behind the data.
So these templates render with their own Django template engine:

- tags: only `if`, `for`, `with`, `firstof`, `cycle`, `ifchanged`, `regroup`, `spaceless`,
  `autoescape`, `filter`, `comment`, `verbatim`, `templatetag`, `widthratio`, `now`, `lorem`
  — no `{% load %}`, `{% include %}`, `{% extends %}`, `{% block %}`, `{% debug %}`, `{% ssi %}`,
  `{% url %}`, `{% csrf_token %}`; no template loaders at all;
- filters: Django's built-in ones except `pprint`;
- data: plain values only (`plain()`): dicts, lists, strings, numbers, Decimal, dates — never
  model objects, whose managers and methods would open the whole database. Callers pass
  dicts of the document's data (`record()` projects a model to named fields).

`compile_template()` refuses a template with a clear message (`template_error`), which the
services call when a template is saved.
"""

import datetime as dt
import decimal
import re
import uuid

from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.utils.safestring import SafeString

from .errors import ValidationFailed

ALLOWED_TAGS = ("autoescape", "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "lorem", "now",
                "regroup", "spaceless", "templatetag", "verbatim", "widthratio", "with")
REFUSED_FILTERS = {"pprint"}  # the repr of whatever it is given

register = Library()
for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
for _name, _func in defaultfilters.register.filters.items():
    if _name not in REFUSED_FILTERS:
        register.filters[_name] = _func


class _SandboxEngine(Engine):
    default_builtins = ["tarifa.kernel.sandbox"]


ENGINE = _SandboxEngine(dirs=[], app_dirs=False, loaders=[], libraries={}, debug=False, string_if_invalid="")
_TAG = re.compile(r"\{%-?\s*(\w+)")
_END_TAGS = {"else", "elif", "empty", "plural", "endif", "endfor", "endwith", "endcomment", "endautoescape",
             "endfilter", "endifchanged", "endspaceless", "endverbatim"}


class TemplateRefused(ValidationFailed):
    code = "template_error"
    status = 422


def compile_template(body: str, *, field: str = "body"):
    """The sandboxed template of `body`, or `TemplateRefused` naming what is not allowed."""
    text = body or ""
    in_verbatim = False
    for match in _TAG.finditer(text):
        name = match.group(1)
        if in_verbatim:
            in_verbatim = name != "endverbatim"
            continue
        if name == "verbatim":
            in_verbatim = True
            continue
        if name not in ALLOWED_TAGS and name not in _END_TAGS:
            message = (f"The tag {{% {name} %}} is not allowed in templates: they render in a sandbox with "
                       f"only the document's data (allowed tags: {', '.join(ALLOWED_TAGS)}).")
            raise TemplateRefused(message, fields={field: [message]})
    try:
        return ENGINE.from_string(text)
    except TemplateSyntaxError as exc:
        message = f"The template is not valid: {exc}"
        raise TemplateRefused(message, fields={field: [str(exc)]}) from None


_SCALARS = (str, int, float, bool, decimal.Decimal, dt.date, dt.datetime, dt.time, dt.timedelta, type(None))


def plain(value, *, path: str = "data"):
    """`value` as plain template data: dicts (string keys), lists, scalars; UUIDs become strings.
    Anything else (a model object, a queryset, a function) is a programming error, refused here
    so that no template ever gets hold of it."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("_"):
                raise TypeError(f"{path}: template data keys are plain names, not {key!r}")
            out[key] = plain(item, path=f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [plain(item, path=f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} is not plain template data; pass a dict of its fields")


def record(obj, fields) -> dict | None:
    """A dict of `obj`'s named fields for a template (None for None). A field `x_display` reads
    `get_x_display()`; `a__b` reads `obj.a.b` (None when `a` is None)."""
    if obj is None:
        return None
    data = {}
    for name in fields:
        if name.endswith("_display") and hasattr(obj, f"get_{name[:-8]}_display"):
            value = getattr(obj, f"get_{name[:-8]}_display")()
        else:
            value = obj
            for part in name.split("__"):
                value = getattr(value, part, None) if value is not None else None
        if isinstance(value, SafeString):
            value = str(value)
        data[name] = str(value) if not isinstance(value, _SCALARS + (uuid.UUID, dict, list)) else value
    return data


def render(body_or_template, data: dict, *, autoescape: bool = True) -> str:
    """Render an operator's template (text or `compile_template()` result) with plain `data`."""
    template = compile_template(body_or_template) if isinstance(body_or_template, str) else body_or_template
    return template.render(Context(plain(data), autoescape=autoescape))
