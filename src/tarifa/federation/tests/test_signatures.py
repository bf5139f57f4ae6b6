"""Signed requests (RFC 9421 subset, RFC 9530 digest): the RFC's own Ed25519 example, and Tarifa's
signature accepted, and refused when the body, path or key is wrong, too old or from an unknown key."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization

from tarifa.federation import signatures as sig

# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.2.6 (a request signed with it).
RFC_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_PUBLIC = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n-----END PUBLIC KEY-----\n"
RFC_INPUT = ('("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473'
             ';keyid="test-key-ed25519"')
RFC_SIGNATURE = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
RFC_HEADERS = {"date": "Tue, 20 Apr 2021 02:07:55 GMT", "content-type": "application/json", "content-length": "18"}


def test_the_rfc_9421_ed25519_example_gives_its_signature_base_and_signature():
    params = sig.parse_signature_input(RFC_INPUT)
    assert params.params == {"created": 1618884473, "keyid": "test-key-ed25519"}
    base = sig.signature_base(params, method="POST", path="/foo", authority="example.com", headers=RFC_HEADERS)
    assert base.decode().splitlines() == [
        '"date": Tue, 20 Apr 2021 02:07:55 GMT', '"@method": POST', '"@path": /foo', '"@authority": example.com',
        '"content-type": application/json', '"content-length": 18', f'"@signature-params": {RFC_INPUT}']
    private = serialization.load_pem_private_key(RFC_PRIVATE, password=None)
    # Ed25519 is deterministic: signing the base gives the RFC's bytes, and the RFC's public key verifies them.
    assert base64.b64encode(private.sign(base)).decode() == RFC_SIGNATURE
    sig.public_from_text(RFC_PUBLIC).verify(base64.b64decode(RFC_SIGNATURE), base)
    assert sig.public_to_text(private.public_key()) == sig.public_to_text(sig.public_from_text(RFC_PUBLIC))


def test_content_digest_is_rfc_9530_sha_256():
    # RFC 9530 §2 example: {"hello": "world"}\n
    assert sig.content_digest(b'{"hello": "world"}\n') == "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    assert sig.digest_matches("sha-512=:abc:, sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:",
                              b'{"hello": "world"}\n')


KEY = sig.generate_private_key()
OTHER = sig.generate_private_key()
NOW = 1_800_000_000
BODY = b'{"stream_seq":1}'
PATH = "/federation/v1/streams/B1/payments/messages"


def signed(body=BODY, path=PATH, key=KEY, key_id="B1.k1", created=NOW):
    headers = sig.sign_request(method="POST", path=path, body=body, key_id=key_id, private_key=key, created=created)
    return {k.lower(): v for k, v in headers.items()}


def keys(table):
    return lambda key_id, created: [k.public_key() for k in table.get(key_id, [])]


def verify(headers, *, body=BODY, path=PATH, method="POST", table=None, now=NOW):
    return sig.verify_request(method=method, path=path, headers=headers, body=body,
                              public_keys=keys(table if table is not None else {"B1.k1": [KEY]}), now=now)


def test_a_good_signature_verifies():
    headers = signed()
    assert headers["signature-input"].startswith('tarifa=("@method" "@path" "content-digest");created=1800000000;'
                                                 'keyid="B1.k1";alg="ed25519"')
    assert verify(headers) == sig.Verified("B1.k1", NOW)


@pytest.mark.parametrize("change, code", [
    (dict(body=b'{"stream_seq":2}'), "bad_digest"),
    (dict(path="/federation/v1/streams/B2/payments/messages"), "bad_signature"),
    (dict(method="PUT"), "bad_signature"),
    (dict(table={"B1.k1": [OTHER]}), "bad_signature"),  # the key id of one node, the key of another
    (dict(table={}), "unknown_key"),
    (dict(now=NOW + 301), "stale_signature"),
    (dict(now=NOW - 301), "stale_signature"),
])
def test_a_changed_request_a_wrong_key_or_an_old_signature_is_refused(change, code):
    with pytest.raises(sig.SignatureError) as exc:
        verify(signed(), **change)
    assert exc.value.code == code


def test_a_tampered_body_with_a_recomputed_digest_fails_the_signature():
    headers = signed()
    tampered = b'{"stream_seq":9}'
    headers["content-digest"] = sig.content_digest(tampered)
    with pytest.raises(sig.SignatureError) as exc:
        verify(headers, body=tampered)
    assert exc.value.code == "bad_signature"


def test_a_changed_key_id_or_created_fails_the_signature():
    for old, new in [('keyid="B1.k1"', 'keyid="B1.k2"'), ("created=1800000000", "created=1800000001")]:
        headers = signed()
        headers["signature-input"] = headers["signature-input"].replace(old, new)
        with pytest.raises(sig.SignatureError) as exc:
            verify(headers, table={"B1.k1": [KEY], "B1.k2": [KEY]})
        assert exc.value.code == "bad_signature"


def test_unsigned_or_partly_signed_requests_are_refused():
    with pytest.raises(sig.SignatureError) as exc:
        verify({"content-digest": sig.content_digest(BODY)})
    assert exc.value.code == "unsigned"
    headers = signed()
    headers["signature-input"] = headers["signature-input"].replace(' "content-digest"', "")
    with pytest.raises(sig.SignatureError) as exc:
        verify(headers)
    assert exc.value.code == "incomplete_signature"


def test_during_a_rotation_both_keys_verify():
    new = sig.generate_private_key()
    table = {"B1.k1": [KEY], "B1.k2": [new]}
    assert verify(signed(key=KEY, key_id="B1.k1"), table=table).key_id == "B1.k1"
    assert verify(signed(key=new, key_id="B1.k2"), table=table).key_id == "B1.k2"
