"""Secrets at rest: values Tarifa must read back (a NAS's shared secret, a subscriber's PAP/CHAP
password, a TOTP seed, a gateway's API key) are stored encrypted, never in clear.

- `encrypt(text) -> str` / `decrypt(token) -> str`: Fernet (AES-128-CBC with HMAC-SHA256, from the
  `cryptography` package), the stored text is `enc1:<token>`.
- The key: `TARIFA_ENCRYPTION_KEYS` — one or more Fernet keys (urlsafe base64 of 32 bytes,
  `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`),
  comma-separated; the first encrypts, every one decrypts, so a key rotates with overlap:
  put the new key first, run `tarifa secrets rotate` (re-encrypts every stored secret), then drop the
  old one. Unset: a key derived from Django's SECRET_KEY (HKDF-SHA256), which is enough for one server.
- `EncryptedTextField`: a model field holding ciphertext in the database and the clear text in
  Python. It cannot be filtered on (each encryption differs); look records up by another field.
  The audit trail never records the value, only that it changed (`fingerprint`).
"""

import base64
import functools
import hashlib
import hmac

from django.conf import settings
from django.db import models

PREFIX = "enc1:"


class SecretUnreadable(ValueError):
    """A stored secret that no configured key opens (the key was changed without rotating)."""


def _derived_key() -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tarifa", info=b"secrets at rest").derive(
        settings.SECRET_KEY.encode()
    )
    return base64.urlsafe_b64encode(raw)


@functools.lru_cache(maxsize=4)
def _fernet(keys: str, secret_key: str):
    from cryptography.fernet import Fernet, MultiFernet

    listed = [k.strip() for k in keys.split(",") if k.strip()]
    fernets = [Fernet(k.encode()) for k in listed] or [Fernet(_derived_key())]
    return MultiFernet(fernets)


def _cipher():
    return _fernet(getattr(settings, "TARIFA_ENCRYPTION_KEYS", "") or "", settings.SECRET_KEY)


def encrypt(text: str) -> str:
    if text is None or text == "":
        return text
    return PREFIX + _cipher().encrypt(text.encode()).decode()


def decrypt(stored: str) -> str:
    if stored is None or stored == "":
        return stored
    if not stored.startswith(PREFIX):
        raise SecretUnreadable("A secret is stored without encryption.")
    from cryptography.fernet import InvalidToken

    try:
        return _cipher().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with the configured keys (TARIFA_ENCRYPTION_KEYS)."
        ) from None


def rotate(stored: str) -> str:
    """The same secret encrypted with the first key (MultiFernet.rotate)."""
    if not stored:
        return stored
    return PREFIX + _cipher().rotate(stored[len(PREFIX):].encode()).decode()


def fingerprint(text: str) -> str:
    """A short keyed digest: tells that a secret changed without telling what it is."""
    if not text:
        return ""
    digest = hmac.new(settings.SECRET_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"secret #{digest[:10]}"


class EncryptedTextField(models.TextField):
    """Clear text in Python, `enc1:` ciphertext in the database."""

    secret = True  # the audit trail records a fingerprint, never the value

    def from_db_value(self, value, expression, connection):
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        if value.startswith(PREFIX):  # already encrypted (e.g. a migration copying rows)
            return value
        return encrypt(value)

    def get_lookup(self, lookup_name):
        if lookup_name not in ("isnull",):
            return None  # ciphertext cannot be compared: filter on another field
        return super().get_lookup(lookup_name)
