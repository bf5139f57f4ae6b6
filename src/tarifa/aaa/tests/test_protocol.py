"""The RFC example packets, decoded and verified with pyrad and Tarifa's checks (no database).

Bytes from RFC 2865 §7.1 (PAP, "nemo"/"arctangent", secret "xyzzy5461"), §7.2 (CHAP, "flopsy") and
RFC 5997 §6 (Status-Server with Message-Authenticator, secret "xyzzy5461").
"""

import hashlib
from collections import OrderedDict

from pyrad import packet as rp

from tarifa.aaa import protocol

SECRET = b"xyzzy5461"


def _hex(text):
    return bytes.fromhex(" ".join(text.split()))


RFC2865_PAP_REQUEST = _hex("""
    01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
    98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
    93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
    01 10 05 06 00 00 00 03""")
RFC2865_PAP_ACCEPT = _hex("""
    02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
    9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
    0e 06 c0 a8 01 03""")
RFC2865_CHAP_REQUEST = _hex("""
    01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
    0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9
    75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
    06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00
    02 07 06 00 00 00 01""")
RFC5997_STATUS_SERVER = _hex("""
    0c da 00 26 8a 54 f4 68 6f b3 94 c5 28 66 e3 02
    18 5d 06 23 50 12 5a 66 5e 2e 1e 84 11 f3 e2 43
    82 20 97 c8 4f a3""")


def test_rfc2865_pap_example_decodes_and_the_password_verifies():
    pkt = rp.AuthPacket(packet=RFC2865_PAP_REQUEST, secret=SECRET, dict=protocol.dictionary())
    assert pkt.code == rp.AccessRequest and pkt.id == 0
    assert pkt["User-Name"] == ["nemo"]
    assert pkt["NAS-IP-Address"] == ["192.168.1.16"]
    assert pkt["NAS-Port"] == [3]
    assert protocol.user_name(pkt) == "nemo"
    assert protocol.check_password(pkt, "arctangent") == ("pap", True)
    assert protocol.check_password(pkt, "arctangenT") == ("pap", False)
    # The RFC's packet has no Message-Authenticator: Tarifa's server rejects such a request.
    assert not pkt.message_authenticator


def test_rfc2865_pap_accept_example_has_the_response_authenticator_of_the_request():
    request = rp.AuthPacket(packet=RFC2865_PAP_REQUEST, secret=SECRET, dict=protocol.dictionary())
    reply = request.CreateReply(packet=RFC2865_PAP_ACCEPT)
    assert reply.code == rp.AccessAccept
    assert reply["Service-Type"] == ["Login-User"]
    assert reply["Login-Service"] == ["Telnet"]
    assert reply["Login-IP-Host"] == ["192.168.1.3"]
    assert request.VerifyReply(reply, RFC2865_PAP_ACCEPT)
    # The same attributes encoded by pyrad give the RFC's bytes.
    built = request.CreateReply(message_authenticator=False)
    built.code = rp.AccessAccept
    built["Service-Type"] = "Login-User"
    built["Login-Service"] = "Telnet"
    built["Login-IP-Host"] = "192.168.1.3"
    assert built.ReplyPacket() == RFC2865_PAP_ACCEPT


def test_rfc2865_chap_example_decodes():
    pkt = rp.AuthPacket(packet=RFC2865_CHAP_REQUEST, secret=SECRET, dict=protocol.dictionary())
    assert pkt.id == 1
    assert pkt["User-Name"] == ["flopsy"]
    chap = OrderedDict.__getitem__(pkt, 3)[0]
    assert len(chap) == 17 and chap[0] == 22  # CHAP ID 22, then the 16-octet response
    assert pkt["NAS-Port"] == [20]
    assert pkt["Service-Type"] == ["Framed-User"]
    assert pkt["Framed-Protocol"] == ["PPP"]
    # The RFC does not give flopsy's password: the response is MD5(ID + password + challenge), where
    # the challenge is the Request Authenticator (no CHAP-Challenge attribute).
    method, ok = protocol.check_password(pkt, "not-the-password")
    assert (method, ok) == ("chap", False)


def test_chap_with_a_known_password_verifies_as_rfc1994_says():
    pkt = rp.AuthPacket(code=rp.AccessRequest, id=7, secret=SECRET, dict=protocol.dictionary(),
                        authenticator=b"\x01" * 16)
    pkt["User-Name"] = "flopsy"
    pkt["CHAP-Password"] = bytes([22]) + hashlib.md5(bytes([22]) + b"carrots" + b"\x01" * 16).digest()
    decoded = rp.AuthPacket(packet=pkt.RequestPacket(), secret=SECRET)
    assert protocol.check_password(decoded, "carrots") == ("chap", True)
    assert protocol.check_password(decoded, "parsley") == ("chap", False)
    # With a CHAP-Challenge attribute the challenge is that attribute.
    pkt["CHAP-Challenge"] = b"0123456789abcdef"
    pkt["CHAP-Password"] = bytes([9]) + hashlib.md5(bytes([9]) + b"carrots" + b"0123456789abcdef").digest()
    decoded = rp.AuthPacket(packet=pkt.RequestPacket(), secret=SECRET)
    assert protocol.check_password(decoded, "carrots") == ("chap", True)


def test_rfc5997_status_server_example_verifies_its_message_authenticator():
    pkt = rp.AuthPacket(packet=RFC5997_STATUS_SERVER, secret=SECRET, dict=protocol.dictionary())
    assert pkt.code == rp.StatusServer and pkt.id == 0xDA
    assert pkt.message_authenticator
    assert pkt.verify_message_authenticator()
    wrong = rp.AuthPacket(packet=RFC5997_STATUS_SERVER, secret=b"foobar")
    assert not wrong.verify_message_authenticator()
    # A reply is signed, Message-Authenticator first (BlastRADIUS).
    reply = pkt.CreateReply()
    reply.AddAttribute("Reply-Message", "up")
    raw = reply.ReplyPacket()
    assert raw[20] == 80 and raw[21] == 18
    assert pkt.VerifyReply(rp.AuthPacket(packet=raw, secret=SECRET, dict=protocol.dictionary()), raw,
                           enforce_ma=True)


def test_gigawords_make_64_bit_counters():
    assert protocol.counter64(5, 0) == 5
    assert protocol.counter64(5, 2) == 2 * 2**32 + 5
    pkt = rp.AcctPacket(code=rp.AccountingRequest, id=3, secret=SECRET, dict=protocol.dictionary())
    pkt["Acct-Status-Type"] = "Interim-Update"
    pkt["Acct-Session-Id"] = "abc"
    pkt["Acct-Input-Octets"] = 4_294_967_295
    pkt["Acct-Input-Gigawords"] = 3
    pkt["Acct-Output-Octets"] = 1
    pkt["Acct-Output-Gigawords"] = 1
    decoded = rp.AcctPacket(packet=pkt.RequestPacket(), secret=SECRET)
    assert decoded.VerifyAcctRequest()
    rec = protocol.accounting_record(decoded, nas_id=None, received=1000.0)
    assert rec.status == protocol.INTERIM and rec.session_id == "abc"
    assert rec.bytes_in == 3 * 2**32 + 4_294_967_295
    assert rec.bytes_out == 2**32 + 1


def test_rate_limits_per_nas_type():
    assert protocol.rate_attributes("mikrotik", 100_000, 50_000) == [("Mikrotik-Rate-Limit", "50000k/100000k")]
    assert protocol.rate_attributes("cisco", 100_000, 50_000) == [
        ("Cisco-AVPair", "subscriber:sub-qos-policy-in=TARIFA_UP_50000"),
        ("Cisco-AVPair", "subscriber:sub-qos-policy-out=TARIFA_DOWN_100000")]
    assert protocol.rate_attributes("accel-ppp", 100_000, 50_000) == [("Filter-Id", "100000/50000")]
    assert protocol.rate_attributes("juniper", 100_000, 50_000) == [("ERX-Qos-Profile-Name", "TARIFA_100000_50000")]
    assert protocol.rate_attributes("generic", 100_000, None) == [("WISPr-Bandwidth-Max-Down", 100_000_000)]
    assert protocol.rate_attributes("mikrotik", None, None) == []
    # Every one of them encodes with the vendored dictionaries.
    for nas_type in ("mikrotik", "cisco", "accel-ppp", "juniper", "generic"):
        pkt = rp.AuthPacket(dict=protocol.dictionary(), secret=SECRET, authenticator=b"\0" * 16)
        for name, value in protocol.rate_attributes(nas_type, 1000, 2000):
            pkt.AddAttribute(name, value)
        assert pkt._PktEncodeAttributes()


def test_profile_attributes_are_checked_against_the_dictionary():
    assert protocol.valid_attributes({"mikrotik": {"Mikrotik-Address-List": "home"}}) == []
    assert protocol.valid_attributes({"*": {"No-Such-Attribute": "x"}}) == ["*: unknown attribute No-Such-Attribute."]
    assert protocol.valid_attributes({"*": {"Session-Timeout": "soon"}})[0].startswith("*: Session-Timeout")


def test_the_reply_cache_answers_retransmissions_only_while_fresh(monkeypatch):
    cache = protocol.ReplyCache(ttl=30)
    data = RFC5997_STATUS_SERVER
    key = cache.key(("192.0.2.1", 1812), data)
    assert cache.get(key) is None and key not in cache
    cache.put(key, None)  # being processed
    assert key in cache and cache.get(key) is None
    cache.put(key, b"reply")
    assert cache.get(key) == b"reply"
    other = cache.key(("192.0.2.1", 1813), data)
    assert cache.get(other) is None
    later = protocol.time.monotonic() + 31
    monkeypatch.setattr(protocol.time, "monotonic", lambda: later)
    assert cache.get(key) is None
