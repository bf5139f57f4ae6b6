"""MS-CHAPv2 against the worked examples of RFC 2759 §9.2 and RFC 3079 §3.5.3, then through the server."""

import os

import pytest
from pyrad import packet as rp

from tarifa.aaa import mschap, protocol

AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")


def test_md4_rfc1320_test_suite():
    assert mschap.md4(b"").hex() == "31d6cfe0d16ae931b73c59d7e0c089c0"
    assert mschap.md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
    assert mschap.md4(b"message digest").hex() == "d9130a8164549fe818874806e1c7014b"
    assert mschap.md4(b"1234567890" * 8).hex() == "e33b4ddc9c38f2199c3e7b164fcc0536"


def test_rfc2759_worked_example():
    assert mschap.nt_password_hash("clientPass").hex().upper() == "44EBBA8D5312B8D611474411F56989AE"
    assert mschap.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "User").hex().upper() == "D02E4386BCE91226"
    nt = mschap.nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, "User", "clientPass")
    assert nt.hex().upper() == "82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"
    assert (mschap.authenticator_response("clientPass", nt, PEER_CHALLENGE, AUTH_CHALLENGE, "User")
            == "S=407A5589115FD0D6209F510FE9C04566932CDA56")
    response = b"\x01\x00" + PEER_CHALLENGE + b"\x00" * 8 + nt
    assert mschap.verify(username="User", password="clientPass", authenticator_challenge=AUTH_CHALLENGE,
                         response=response) == (True, b"\x01S=407A5589115FD0D6209F510FE9C04566932CDA56")
    assert mschap.verify(username="User", password="clientpass", authenticator_challenge=AUTH_CHALLENGE,
                         response=response) == (False, None)


def test_rfc3079_128_bit_keys():
    nt = mschap.nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, "User", "clientPass")
    send, recv = mschap.mppe_keys("clientPass", nt)
    assert send.hex().upper() == "8B7CDC149B993A1BA118CB153F56DCCB"  # the server's send key
    assert len(recv) == 16 and recv != send


@pytest.mark.django_db(transaction=True)
def test_the_server_accepts_mschapv2_with_the_success_and_mppe_keys():
    from .helpers import SECRET, running_server, subscriber, udp_exchange

    subscriber()
    challenge, peer = os.urandom(16), os.urandom(16)
    with running_server() as server:
        def request(password):
            pkt = rp.AuthPacket(code=rp.AccessRequest, id=5, secret=SECRET.encode(), dict=protocol.dictionary())
            pkt["User-Name"] = "alice"
            pkt["MS-CHAP-Challenge"] = challenge
            pkt["MS-CHAP2-Response"] = (b"\x07\x00" + peer + b"\x00" * 8
                                        + mschap.nt_response(challenge, peer, "alice", password))
            pkt.add_message_authenticator()
            return pkt, pkt.RequestPacket()

        pkt, raw = request("wonderland")
        answer = udp_exchange(server.auth_port, raw)
        reply = rp.AuthPacket(packet=answer, secret=SECRET.encode(), dict=protocol.dictionary())
        assert reply.code == rp.AccessAccept
        assert pkt.VerifyReply(reply, answer, enforce_ma=True)
        nt = mschap.nt_response(challenge, peer, "alice", "wonderland")
        expected = mschap.authenticator_response("wonderland", nt, peer, challenge, "alice")
        assert reply["MS-CHAP2-Success"] == [b"\x07" + expected.encode()]
        send, recv = mschap.mppe_keys("wonderland", nt)
        reply.request_authenticator = pkt.authenticator  # the salt of the keys is the request's
        assert reply["MS-MPPE-Send-Key"] == [send] and reply["MS-MPPE-Recv-Key"] == [recv]
        assert reply["Mikrotik-Rate-Limit"] == ["5000k/20000k"]
        _pkt, raw = request("wrong")
        answer = udp_exchange(server.auth_port, raw)
        assert rp.AuthPacket(packet=answer, secret=SECRET.encode()).code == rp.AccessReject
