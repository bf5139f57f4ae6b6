"""One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238). Pure computation, no ORM.

`totp(secret, at)` is the code for a Unix time; `verify(secret, code, at)` accepts the code of
the current 30-second step or of one step before or after (clock drift), and returns the step it
matched so that a caller can refuse a code used twice.
"""

import base64
import hashlib
import hmac
import secrets
import struct

STEP = 30
DIGITS = 6


def new_secret() -> str:
    """A random 160-bit secret in base32 (what authenticator apps take)."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest=hashlib.sha1) -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def totp(secret: str | bytes, at: float, digits: int = DIGITS, digest=hashlib.sha1, step: int = STEP) -> str:
    return hotp(_key(secret), int(at) // step, digits, digest)


def verify(secret: str | bytes, code: str, at: float, window: int = 1) -> int | None:
    """The time step `code` is valid for (within ±`window` steps of `at`), or None."""
    code = (code or "").strip().replace(" ", "")
    if not code.isdigit() or len(code) != DIGITS:
        return None
    key = _key(secret)
    now_step = int(at) // STEP
    for step in range(now_step - window, now_step + window + 1):
        if hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    from urllib.parse import quote

    return (f"otpauth://totp/{quote(issuer)}:{quote(account)}?secret={secret}&issuer={quote(issuer)}"
            f"&algorithm=SHA1&digits={DIGITS}&period={STEP}")
