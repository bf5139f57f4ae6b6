"""Secrets at rest: encrypted with the first key, readable with any configured key, never in the
audit trail."""

import pytest
from cryptography.fernet import Fernet

from tarifa.kernel import secrets


def test_round_trip_and_ciphertext_differs_each_time():
    a, b = secrets.encrypt("s3cret"), secrets.encrypt("s3cret")
    assert a.startswith("enc1:") and b.startswith("enc1:")
    assert a != b and "s3cret" not in a
    assert secrets.decrypt(a) == secrets.decrypt(b) == "s3cret"
    assert secrets.encrypt("") == "" and secrets.decrypt("") == ""


def test_rotation_with_overlap(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TARIFA_ENCRYPTION_KEYS = old
    stored = secrets.encrypt("radius-secret")
    settings.TARIFA_ENCRYPTION_KEYS = f"{new},{old}"  # new key first: both open, the new one encrypts
    assert secrets.decrypt(stored) == "radius-secret"
    rotated = secrets.rotate(stored)
    settings.TARIFA_ENCRYPTION_KEYS = new  # the old key dropped: only rotated values open
    assert secrets.decrypt(rotated) == "radius-secret"
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt(stored)


def test_clear_text_in_the_database_is_refused():
    with pytest.raises(secrets.SecretUnreadable):
        secrets.decrypt("plain")


def test_field_stores_ciphertext_and_refuses_lookups():
    field = secrets.EncryptedTextField()
    stored = field.get_prep_value("pw")
    assert stored.startswith("enc1:") and field.from_db_value(stored, None, None) == "pw"
    assert field.get_prep_value(stored) == stored  # already encrypted: kept
    assert field.get_lookup("exact") is None and field.get_lookup("isnull") is not None


def test_fingerprint_tells_a_change_not_the_value():
    assert secrets.fingerprint("a") != secrets.fingerprint("b")
    assert secrets.fingerprint("a") == secrets.fingerprint("a")
    assert "a" != secrets.fingerprint("a") and secrets.fingerprint("") == ""

