"""Typed domain errors. Every service raises these, with a stable machine code.

The API renders them as `{"error": {"code", "message", "fields"}}`; the UI shows the
message and the field errors next to the fields.
"""


class DomainError(Exception):
    code = "invalid"
    status = 400
    retry_after: int | None = None  # seconds, for 429 (and 503): sent as the Retry-After header

    def __init__(self, message: str, *, code: str | None = None, fields: dict | None = None, status: int | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after
        if code:
            self.code = code
        if status:
            self.status = status
        self.fields = fields or {}

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class ValidationFailed(DomainError):
    code = "validation_failed"


class NotFound(DomainError):
    code = "not_found"
    status = 404


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409
