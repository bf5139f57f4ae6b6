"""TOTP against RFC 6238 Appendix B (SHA1, secret "12345678901234567890", 8 digits), and how
sign-in uses it (a code works once)."""

import pytest

from tarifa.portal import totp

SECRET = b"12345678901234567890"
VECTORS = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
           (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.mark.parametrize("at,code", VECTORS)
def test_rfc6238_appendix_b_sha1(at, code):
    assert totp.totp(SECRET, at, digits=8) == code


def test_base32_secret_and_six_digits():
    import base64

    secret = base64.b32encode(SECRET).decode()
    assert totp.totp(secret, 59) == "287082"  # the 8-digit code's last 6 digits
    assert totp.verify(secret, "287082", 59) == 1
    assert totp.verify(secret, "287082", 59 + 30) == 1  # one step of clock drift
    assert totp.verify(secret, "287082", 59 + 90) is None
    assert totp.verify(secret, "12345", 59) is None and totp.verify(secret, "abcdef", 59) is None


def test_new_secret_is_160_bits():
    import base64

    assert len(base64.b32decode(totp.new_secret())) == 20
