"""The RADIUS server against a real peer: radclient (Debian's freeradius-utils), plus raw datagrams
for what radclient cannot do on purpose (retransmit the same bytes, send from another address)."""

import socket

import pytest
from pyrad import packet as rp

from tarifa.aaa import protocol
from tarifa.aaa.models import AuthAttempt, FinishedSession, Session
from tarifa.subscriptions import services as subscriptions

from .helpers import (ACTOR, access_request, accounting_request, radclient, running_server, subscriber, udp_exchange,
                      wait_for)

pytestmark = pytest.mark.django_db(transaction=True)


def _attempts(login):
    return list(AuthAttempt.objects.filter(login=login).order_by("at").values_list("outcome", "reason"))


def test_radclient_logs_in_with_pap_and_chap_and_gets_the_profile():
    sub, _nas, _profile = subscriber()
    with running_server() as server:
        out = radclient(server, "auth", "User-Name = alice, User-Password = wonderland, Message-Authenticator = 0x00")
        assert "Received Access-Accept" in out, out
        assert 'Mikrotik-Rate-Limit = "5000k/20000k"' in out
        assert 'Framed-Pool = "home"' in out
        assert "Acct-Interim-Interval = 60" in out
        # Message-Authenticator is the reply's first attribute (BlastRADIUS).
        received = out[out.index("Received Access-Accept"):].splitlines()
        assert received[1].strip().startswith("Message-Authenticator = 0x")
        out = radclient(server, "auth", "User-Name = alice, CHAP-Password = wonderland, Message-Authenticator = 0x00")
        assert "Received Access-Accept" in out, out
        wait_for(lambda: len(_attempts("alice")) == 2, what="the authentication log")
    assert _attempts("alice") == [("accept", ""), ("accept", "")]
    assert set(AuthAttempt.objects.values_list("method", flat=True)) == {"pap", "chap"}
    assert AuthAttempt.objects.filter(subscription_id=sub.pk).count() == 2


def test_a_wrong_password_or_no_message_authenticator_is_rejected_with_the_reason_logged():
    subscriber()
    with running_server() as server:
        out = radclient(server, "auth", "User-Name = alice, User-Password = looking-glass, Message-Authenticator = 0x00")
        assert "Received Access-Reject" in out, out
        out = radclient(server, "auth", "User-Name = alice, User-Password = wonderland")
        assert "Received Access-Reject" in out, out
        out = radclient(server, "auth", "User-Name = nobody, User-Password = x, Message-Authenticator = 0x00")
        assert "Received Access-Reject" in out, out
        wait_for(lambda: AuthAttempt.objects.count() == 3, what="the authentication log")
    assert _attempts("alice") == [("reject", "wrong password"), ("reject", "missing Message-Authenticator")]
    assert _attempts("nobody") == [("reject", "unknown login")]


def test_a_wrong_secret_and_an_unknown_nas_get_no_answer():
    subscriber()
    with running_server() as server:
        # Signed with another secret: the Message-Authenticator does not verify, the request is dropped.
        assert udp_exchange(server.auth_port, access_request("alice", "wonderland", secret="guess"),
                            timeout=0.5) is None
        # From an address that is no NAS (127.0.0.2 is loopback too).
        assert udp_exchange(server.auth_port, access_request("alice", "wonderland"), source="127.0.0.2",
                            timeout=0.5) is None
        wait_for(lambda: AuthAttempt.objects.filter(outcome="ignored").count() == 2, what="the log")
    reasons = set(AuthAttempt.objects.values_list("reason", flat=True))
    assert reasons == {"bad Message-Authenticator (wrong secret?)", "unknown NAS"}
    assert AuthAttempt.objects.get(reason="unknown NAS").nas_ip == "127.0.0.2"


def test_status_server_is_answered_on_both_ports():
    subscriber()
    with running_server() as server:
        out = radclient(server, "status", "Message-Authenticator = 0x00")
        assert "Received Access-Accept" in out, out
        pkt = rp.AcctPacket(code=rp.StatusServer, id=9, secret=b"testing123", dict=protocol.dictionary(),
                            authenticator=b"\x07" * 16)
        pkt.add_message_authenticator()
        raw = udp_exchange(server.acct_port, pkt.RequestPacket())
        reply = rp.AcctPacket(packet=raw, secret=b"testing123", dict=protocol.dictionary())
        assert reply.code == rp.AccountingResponse
        assert pkt.VerifyReply(reply, raw, enforce_ma=True)


def test_accounting_start_interim_stop_with_gigawords():
    sub, nas, _profile = subscriber()
    with running_server() as server:
        out = radclient(server, "acct", 'Acct-Status-Type = Start, User-Name = alice, Acct-Session-Id = "s1", '
                                        "Framed-IP-Address = 10.0.0.5, Acct-Interim-Interval = 60")
        assert "Received Accounting-Response" in out, out
        session = Session.objects.get(nas=nas, acct_session_id="s1")
        assert session.subscription_id == sub.pk and session.framed_ip == "10.0.0.5"
        out = radclient(server, "acct", 'Acct-Status-Type = Interim-Update, User-Name = alice, Acct-Session-Id = "s1", '
                                        "Acct-Input-Octets = 10, Acct-Input-Gigawords = 1, "
                                        "Acct-Output-Octets = 4294967295, Acct-Output-Gigawords = 5, "
                                        "Acct-Session-Time = 60")
        assert "Received Accounting-Response" in out, out
        session.refresh_from_db()
        assert (session.bytes_in, session.bytes_out) == (2**32 + 10, 5 * 2**32 + 4294967295)
        assert server.snapshot.open_sessions["alice"] == 1
        out = radclient(server, "acct", 'Acct-Status-Type = Stop, User-Name = alice, Acct-Session-Id = "s1", '
                                        "Acct-Input-Octets = 20, Acct-Input-Gigawords = 1, "
                                        "Acct-Output-Octets = 7, Acct-Output-Gigawords = 6, "
                                        "Acct-Session-Time = 90, Acct-Terminate-Cause = User-Request")
        assert "Received Accounting-Response" in out, out
        assert server.snapshot.open_sessions["alice"] == 0
    assert not Session.objects.exists()
    done = FinishedSession.objects.get()
    assert (done.bytes_in, done.bytes_out, done.session_time) == (2**32 + 20, 6 * 2**32 + 7, 90)
    assert (done.terminate_cause, done.stop_reason, done.subscription_id) == ("User-Request", "stop", sub.pk)


def test_a_retransmitted_accounting_request_is_acknowledged_and_not_counted_twice():
    _sub, nas, _profile = subscriber()
    with running_server() as server:
        start = accounting_request(packet_id=1, Acct_Status_Type="Start", User_Name="alice", Acct_Session_Id="r1")
        assert udp_exchange(server.acct_port, start)
        stop = accounting_request(packet_id=2, Acct_Status_Type="Stop", User_Name="alice", Acct_Session_Id="r1",
                                  Acct_Input_Octets=1000, Acct_Output_Octets=5000, Acct_Session_Time=30)
        first = udp_exchange(server.acct_port, stop, source="127.0.0.1")
        assert first is not None
        # The NAS did not see the answer and sends the same bytes again (same id and authenticator) from
        # the same port: answered from the cache, not applied again.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2)
            sock.sendto(stop, ("127.0.0.1", server.acct_port))
            one = sock.recv(4096)
            sock.sendto(stop, ("127.0.0.1", server.acct_port))
            two = sock.recv(4096)
        assert one == two
        assert server.stats.retransmitted >= 1
        # A later copy with a new identifier (a NAS that gave up and re-sent the record) is
        # acknowledged too, and recognised as a duplicate: the session finished once.
        again = accounting_request(packet_id=3, Acct_Status_Type="Stop", User_Name="alice", Acct_Session_Id="r1",
                                   Acct_Input_Octets=1000, Acct_Output_Octets=5000, Acct_Session_Time=30)
        assert udp_exchange(server.acct_port, again)
        assert server.stats.acct_duplicates >= 1
        # A late Start for the finished session does not open it again.
        late = accounting_request(packet_id=4, Acct_Status_Type="Start", User_Name="alice", Acct_Session_Id="r1")
        assert udp_exchange(server.acct_port, late)
    done = FinishedSession.objects.get(nas=nas, acct_session_id="r1")
    assert (done.bytes_in, done.bytes_out) == (1000, 5000)
    assert not Session.objects.exists()


def test_accounting_on_closes_the_nas_sessions_with_their_usage():
    _sub, nas, _profile = subscriber()
    with running_server() as server:
        for sid in ("a", "b"):
            radclient(server, "acct", f'Acct-Status-Type = Start, User-Name = alice, Acct-Session-Id = "{sid}"')
            radclient(server, "acct", f'Acct-Status-Type = Interim-Update, User-Name = alice, Acct-Session-Id = "{sid}", '
                                      "Acct-Output-Octets = 777, Acct-Session-Time = 10")
        assert Session.objects.count() == 2
        out = radclient(server, "acct", "Acct-Status-Type = Accounting-On, NAS-IP-Address = 127.0.0.1")
        assert "Received Accounting-Response" in out, out
        assert server.snapshot.open_sessions["alice"] == 0
    assert not Session.objects.exists()
    closed = FinishedSession.objects.filter(nas=nas).order_by("acct_session_id")
    assert [(f.acct_session_id, f.bytes_out, f.stop_reason) for f in closed] == [
        ("a", 777, "nas_restart"), ("b", 777, "nas_restart")]


def test_simultaneous_use_is_enforced_and_a_suspension_reaches_the_server():
    sub, _nas, profile = subscriber()
    login = "User-Name = alice, User-Password = wonderland, Message-Authenticator = 0x00"
    with running_server() as server:
        radclient(server, "acct", 'Acct-Status-Type = Start, User-Name = alice, Acct-Session-Id = "x1"')
        out = radclient(server, "auth", login)
        assert "Received Access-Reject" in out, out
        radclient(server, "acct", 'Acct-Status-Type = Stop, User-Name = alice, Acct-Session-Id = "x1"')
        assert "Received Access-Accept" in radclient(server, "auth", login)
        # Suspended: the snapshot follows the commit (NOTIFY), the profile says reject.
        subscriptions.suspend(sub, actor=ACTOR, cause="operator", reason="test")
        wait_for(lambda: server.snapshot.subscribers["alice"].status == "suspended", what="the snapshot reload")
        assert "Received Access-Reject" in radclient(server, "auth", login)
        # The operator's choice: a pay-first profile instead.
        from tarifa.aaa import services

        services.update_profile(profile, actor=ACTOR, when_suspended="pay_first", pay_first_pool="pay-first",
                                pay_first_rate_down_kbps=512, pay_first_rate_up_kbps=512)
        wait_for(lambda: server.snapshot.subscribers["alice"].profile.when_suspended == "pay_first",
                 what="the snapshot reload")
        out = radclient(server, "auth", login)
        assert "Received Access-Accept" in out and 'Framed-Pool = "pay-first"' in out, out
        assert 'Mikrotik-Rate-Limit = "512k/512k"' in out
        wait_for(lambda: AuthAttempt.objects.filter(login="alice").count() == 4, what="the log")
    assert _attempts("alice") == [("reject", "simultaneous-use limit 1 reached"), ("accept", ""),
                                  ("reject", "subscription suspended"), ("accept", "pay-first profile (suspended)")]


def test_a_mac_bound_login_is_accepted_from_that_mac_only():
    subscriber(mac_address="AA-BB-CC-00-11-22")
    with running_server() as server:
        base = "User-Name = alice, User-Password = wonderland, Message-Authenticator = 0x00"
        assert "Access-Accept" in radclient(server, "auth", base + ', Calling-Station-Id = "aa:bb:cc:00:11:22"')
        out = radclient(server, "auth", base + ', Calling-Station-Id = "aa:bb:cc:00:11:23"')
        assert "Access-Reject" in out, out
