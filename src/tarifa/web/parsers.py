"""Request body parsers named in REST_FRAMEWORK settings: JSON, multipart and form, bounded.

A NUL character in any field (JSON string, form or multipart field) is refused with 400
`parse_error` before a lookup or the database sees it.

A JSON body is refused (400 `parse_error`) when it nests deeper than `MAX_JSON_DEPTH` or
holds a string with a NUL character; Python's own recursion limit is never reached, for
anonymous requests either (they are parsed by the token endpoint). A body larger than
DATA_UPLOAD_MAX_MEMORY_SIZE is refused with 413 (see tarifa.web.api.exception_handler
and tarifa.web.middleware.BodyLimitMiddleware). How many items a list field may hold is
the serializers' business (tarifa.web.api.StrictSerializer).
"""

import json

from django.conf import settings
from rest_framework import exceptions, parsers

MAX_JSON_DEPTH = 32


def json_depth_error(text: str, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Scan the raw text (brackets outside strings) before json.loads sees it, so a body of
    100,000 '[' costs one pass and no recursion."""
    if text.count("[") + text.count("{") <= limit:
        return None
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return f"JSON nested deeper than {limit} levels."
        elif ch in "]}":
            depth -= 1
    return None


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding) if stream is not None else ""
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - the body is not {encoding} text.") from exc
        if problem := json_depth_error(text):
            raise exceptions.ParseError(f"JSON parse error - {problem}")
        try:
            data = json.loads(text, parse_constant=self._refuse_constant)
        except (ValueError, RecursionError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if _has_nul(data):
            raise exceptions.ParseError("JSON parse error - strings may not contain NUL characters.")
        return data

    @staticmethod
    def _refuse_constant(name):
        raise ValueError(f"{name} is not valid JSON")


def _refuse_nul_fields(data):
    for name, values in data.lists():
        if "\x00" in name or any(isinstance(v, str) and "\x00" in v for v in values):
            raise exceptions.ParseError(f"Form field {name.replace(chr(0), '')!r} contains a NUL character.")


class MultiPartParser(parsers.MultiPartParser):
    """Multipart bodies: like JSON, a NUL in a field is refused before any lookup sees it."""

    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _refuse_nul_fields(result.data)
        return result


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_nul_fields(data)
        return data
