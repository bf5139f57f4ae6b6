"""The CoA/Disconnect client (RFC 5176) against the test NAS listener: no database."""

import pytest
from pyrad import packet as rp

from tarifa.aaa import coa
from tarifa.aaa.nas_listener import NasListener

SECRET = b"coa-secret"


@pytest.fixture
def nas():
    with NasListener(secret=SECRET) as listener:
        yield listener


def _disconnect(nas, **kw):
    kw.setdefault("timeout", 0.3)
    return coa.send_sync(coa.DISCONNECT, host="127.0.0.1", port=nas.port, secret=SECRET,
                         attributes=coa.session_identity(nas_ip="192.0.2.1", user_name="alice",
                                                         acct_session_id="81000001", framed_ip="10.0.0.7"), **kw)


def test_disconnect_acknowledged_and_identifies_the_session(nas):
    result = _disconnect(nas)
    assert result.ok and result.outcome == coa.ACK
    assert [a.outcome for a in result.attempts] == ["ack"]
    (got,) = nas.wait_for(1)
    assert got.kind == coa.DISCONNECT and got.code == rp.DisconnectRequest
    assert got.authenticator_ok and got.message_authenticator_ok is True
    assert got.attributes["User-Name"] == "alice"
    assert got.attributes["Acct-Session-Id"] == "81000001"
    assert got.attributes["Framed-IP-Address"] == "10.0.0.7"
    assert got.attributes["NAS-IP-Address"] == "192.0.2.1"
    # Message-Authenticator is the first attribute (BlastRADIUS).
    assert got.raw[20] == 80


def test_retry_on_timeout_then_ack(nas):
    nas.script = ["silent", "silent", "ack"]
    result = _disconnect(nas, attempts=3)
    assert [a.outcome for a in result.attempts] == ["timeout", "timeout", "ack"]
    received = nas.wait_for(3)
    # Retransmissions are the same packet: same Identifier, same bytes.
    assert len({r.raw for r in received}) == 1
    assert all(a.elapsed_ms >= 300 for a in result.attempts[:2])


def test_gives_up_after_the_attempts(nas):
    nas.default = "silent"
    result = _disconnect(nas, attempts=2)
    assert result.outcome == coa.TIMEOUT and not result.ok
    assert [a.number for a in result.attempts] == [1, 2]
    assert "no answer" in result.attempts[-1].detail


def test_nak_with_error_cause_decoded(nas):
    nas.script = [("nak", 503)]
    result = _disconnect(nas)
    assert result.outcome == coa.NAK
    assert result.attempts[-1].error_cause == 503
    assert result.attempts[-1].error_cause_text == "503 Session Context Not Found"
    assert len(result.attempts) == 1  # a NAK is an answer: not retried


def test_coa_request_with_speed_attributes(nas):
    result = coa.send_sync(coa.COA, host="127.0.0.1", port=nas.port, secret=SECRET, timeout=0.3,
                           attributes={**coa.session_identity(user_name="bob", acct_session_id="A1"),
                                       "Mikrotik-Rate-Limit": "10M/50M"})
    assert result.ok
    (got,) = nas.wait_for(1)
    assert got.kind == coa.COA and got.attributes["Mikrotik-Rate-Limit"] == "10M/50M"


def test_a_reply_signed_with_another_secret_is_ignored():
    with NasListener(secret=b"other") as wrong:
        result = coa.send_sync(coa.DISCONNECT, host="127.0.0.1", port=wrong.port, secret=SECRET, timeout=0.3,
                               attempts=1, attributes={"User-Name": "x"})
        (got,) = wrong.wait_for(1)
    assert not got.authenticator_ok and got.answer == "ack"  # it would not answer a request it cannot verify
    assert result.outcome == coa.TIMEOUT


def test_unencodable_attribute_is_an_error_not_an_exception(nas):
    result = coa.send_sync(coa.COA, host="127.0.0.1", port=nas.port, secret=SECRET,
                           attributes={"No-Such-Attribute": "1"})
    assert result.outcome == coa.ERROR and "encode" in result.attempts[0].detail
