"""FreeRADIUS alongside: the rlm_rest endpoints with the payloads rlm_rest sends (`body = 'json'`),
and Debian's FreeRADIUS itself running the sample configuration (docs/aaa/freeradius/) against a
live Tarifa, with radclient as the NAS."""

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tarifa.aaa.models import AuthAttempt, FinishedSession, Session
from tarifa.subscriptions import services as subscriptions

from .helpers import ACTOR, SECRET, subscriber

ROOT = Path(__file__).resolve().parents[4]
SAMPLE = ROOT / "docs" / "aaa" / "freeradius"
URL = "/api/v1/aaa/rest/"


def attrs(**values):
    """The request list as rlm_rest's JSON encoder writes it."""
    out = {}
    for name, value in values.items():
        name = name.replace("_", "-")
        kind = "integer" if isinstance(value, int) else "string"
        out[name] = {"type": kind, "value": [value]}
    return out


def auth_body(login="alice", **more):
    return attrs(User_Name=login, User_Password="wonderland", NAS_IP_Address="127.0.0.1", **more)


@pytest.fixture
def rest(api, make_user):
    return api(make_user("aaa.rest", username="freeradius"))


@pytest.mark.django_db
def test_the_endpoints_need_a_token_with_aaa_rest(api, make_user):
    subscriber()
    assert api().post(URL + "authorize/", auth_body(), format="json").status_code == 401
    other = api(make_user("aaa.view_session"))
    assert other.post(URL + "authorize/", auth_body(), format="json").status_code == 403
    assert other.post(URL + "accounting/", attrs(Acct_Status_Type="Start"), format="json").status_code == 403


@pytest.mark.django_db
def test_authorize_answers_the_password_and_the_profile_for_the_nas_type(rest):
    subscriber()
    response = rest.post(URL + "authorize/", auth_body(), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["control:Cleartext-Password"] == {"op": ":=", "do_xlat": False, "is_json": False,
                                                  "value": "wonderland"}
    assert body["reply:Mikrotik-Rate-Limit"]["value"] == "5000k/20000k"  # the NAS on 127.0.0.1 is a MikroTik
    assert body["reply:Framed-Pool"]["value"] == "home"
    assert body["reply:Acct-Interim-Interval"]["value"] == "60"


@pytest.mark.django_db
def test_authorize_rejects_by_the_same_rule_as_the_server(rest):
    sub, nas, profile = subscriber()

    def reason(body):
        response = rest.post(URL + "authorize/", body, format="json")
        assert response.status_code == 401, response.content
        return response.json()["request:Module-Failure-Message"]["value"]

    assert reason(auth_body("nobody")) == "tarifa: unknown login"
    assert reason(attrs(User_Name="alice", NAS_IP_Address="192.0.2.99")) == "tarifa: unknown NAS"
    subscriptions.suspend(sub, actor=ACTOR, cause="operator", reason="test")
    assert reason(auth_body()) == "tarifa: subscription suspended"
    from tarifa.aaa import services

    services.update_profile(profile, actor=ACTOR, when_suspended="pay_first", pay_first_pool="pay-first",
                            pay_first_rate_down_kbps=256, pay_first_rate_up_kbps=256)
    body = rest.post(URL + "authorize/", auth_body(), format="json").json()
    assert body["reply:Framed-Pool"]["value"] == "pay-first"
    assert body["reply:Mikrotik-Rate-Limit"]["value"] == "256k/256k"
    assert body["request:Module-Success-Message"]["value"] == "tarifa: pay-first profile (suspended)"


@pytest.mark.django_db
def test_the_simultaneous_use_limit_counts_open_sessions(rest):
    subscriber()
    start = attrs(Acct_Status_Type="Start", User_Name="alice", Acct_Session_Id="x1", NAS_IP_Address="127.0.0.1")
    assert rest.post(URL + "accounting/", start, format="json").status_code == 204
    response = rest.post(URL + "authorize/", auth_body(), format="json")
    assert response.status_code == 401
    assert response.json()["request:Module-Failure-Message"]["value"] == "tarifa: simultaneous-use limit 1 reached"


@pytest.mark.django_db
def test_post_auth_writes_the_authentication_log(rest):
    sub, nas, _ = subscriber()
    assert rest.post(URL + "post-auth/", auth_body(), format="json").status_code == 204
    reject = auth_body(Module_Failure_Message="pap: Cleartext-Password does not match \"known good\" password")
    assert rest.post(URL + "post-auth/", reject, format="json", HTTP_X_TARIFA_OUTCOME="reject").status_code == 204
    rows = list(AuthAttempt.objects.order_by("at").values_list("outcome", "reason", "login", "nas", "subscription",
                                                               "method"))
    assert rows == [("accept", "", "alice", nas.pk, sub.pk, "pap"),
                    ("reject", 'pap: Cleartext-Password does not match "known good" password', "alice", nas.pk,
                     sub.pk, "pap")]


@pytest.mark.django_db
def test_accounting_goes_the_servers_way_each_record_once_with_gigawords(rest):
    sub, nas, _ = subscriber()
    common = {"User_Name": "alice", "Acct_Session_Id": "s1", "NAS_IP_Address": "127.0.0.1"}
    post = lambda **a: rest.post(URL + "accounting/", attrs(**common, **a), format="json").status_code  # noqa: E731
    assert post(Acct_Status_Type="Start", Framed_IP_Address="10.0.0.7") == 204
    assert post(Acct_Status_Type="Interim-Update", Acct_Input_Octets=5, Acct_Input_Gigawords=1,
                Acct_Output_Octets=100, Acct_Session_Time=60) == 204
    session = Session.objects.get()
    assert (session.subscription_id, session.bytes_in, session.bytes_out, str(session.framed_ip)) == \
        (sub.pk, 2**32 + 5, 100, "10.0.0.7")
    stop = {"Acct_Status_Type": "Stop", "Acct_Input_Octets": 9, "Acct_Input_Gigawords": 1, "Acct_Output_Octets": 300,
            "Acct_Session_Time": 120, "Acct_Terminate_Cause": "User-Request"}
    assert post(**stop) == 204
    assert post(**stop) == 204  # FreeRADIUS retried: stored once
    assert not Session.objects.exists()
    done = FinishedSession.objects.get()
    assert (done.bytes_in, done.bytes_out, done.session_time, done.terminate_cause) == \
        (2**32 + 9, 300, 120, "User-Request")
    unknown = attrs(Acct_Status_Type="Start", User_Name="alice", Acct_Session_Id="s2", NAS_IP_Address="192.0.2.9")
    assert rest.post(URL + "accounting/", unknown, format="json").status_code == 404


@pytest.mark.django_db
def test_junk_is_a_400_not_a_500(rest):
    assert rest.post(URL + "authorize/", ["not", "attributes"], format="json").status_code == 400
    assert rest.post(URL + "accounting/", {"Acct-Status-Type": {"value": [{"x": 1}]}}, format="json").status_code == 404


# -- FreeRADIUS itself -------------------------------------------------------------------------------

def _freeradius_dir(tmp_path, url, auth_port, acct_port):
    """Debian's configuration with only what the sample needs, and the sample itself."""
    raddb = tmp_path / "raddb"
    shutil.copytree("/etc/freeradius/3.0", raddb, symlinks=True)
    for link in (raddb / "sites-enabled").iterdir():
        link.unlink()
    for link in (raddb / "mods-enabled").iterdir():
        if link.name not in ("pap", "chap", "mschap", "always", "expr"):
            link.unlink()
    shutil.copy(SAMPLE / "mods-available" / "rest", raddb / "mods-enabled" / "rest")
    site = (SAMPLE / "sites-available" / "tarifa").read_text()
    site = site.replace("port = 1812", f"port = {auth_port}").replace("port = 1813", f"port = {acct_port}")
    site = site.replace("ipaddr = *", "ipaddr = 127.0.0.1")
    (raddb / "sites-enabled" / "tarifa").write_text(site)
    (raddb / "clients.conf").write_text(f"client nas {{\n ipaddr = 127.0.0.1\n secret = {SECRET}\n}}\n")
    conf = (raddb / "radiusd.conf").read_text()
    conf = conf.replace("\tuser = freerad", "#").replace("\tgroup = freerad", "#")
    (raddb / "radiusd.conf").write_text(conf)
    return raddb


def _radclient(port, kind, attributes):
    result = subprocess.run(["radclient", "-x", "-r", "1", "-t", "5", f"127.0.0.1:{port}", kind, SECRET],
                            input=attributes, capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)
def test_freeradius_with_the_sample_configuration_answers_from_tarifa(tmp_path, live_server, make_user):
    from tarifa.identity import services as identity
    from tarifa.testing.processes import free_udp_port

    for tool in ("freeradius", "radclient"):
        assert shutil.which(tool), f"{tool} is missing: make radius-deps installs it"
    assert list(Path("/usr/lib/freeradius").glob("rlm_rest.so")), "rlm_rest is missing: make radius-deps"
    sub, nas, _ = subscriber()
    user = make_user("aaa.rest", username="freeradius")
    _token, token = identity.issue_token(actor=user, user=user, name="freeradius")
    auth_port, acct_port = free_udp_port(), free_udp_port()
    raddb = _freeradius_dir(tmp_path, live_server.url, auth_port, acct_port)
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "TARIFA_URL": live_server.url, "TARIFA_REST_TOKEN": token}
    proc = subprocess.Popen(["freeradius", "-X", "-d", str(raddb)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "Ready to process requests" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60) and proc.poll() is None, "FreeRADIUS did not start:\n" + "".join(lines[-60:])
        out = _radclient(auth_port, "auth", "User-Name = alice, User-Password = wonderland, "
                                            "Message-Authenticator = 0x00")
        assert "Received Access-Accept" in out, out + "".join(lines[-80:])
        assert 'Mikrotik-Rate-Limit = "5000k/20000k"' in out and 'Framed-Pool = "home"' in out, out
        out = _radclient(auth_port, "auth", "User-Name = alice, CHAP-Password = wonderland")
        assert "Received Access-Accept" in out, out + "".join(lines[-80:])
        out = _radclient(auth_port, "auth", "User-Name = alice, User-Password = looking-glass")
        assert "Received Access-Reject" in out, out
        out = _radclient(auth_port, "auth", "User-Name = nobody, User-Password = x")
        assert "Received Access-Reject" in out, out

        start = 'Acct-Status-Type = Start, User-Name = alice, Acct-Session-Id = "fr1", Framed-IP-Address = 10.0.0.9'
        assert "Received Accounting-Response" in _radclient(acct_port, "acct", start), "".join(lines[-80:])
        stop = ('Acct-Status-Type = Stop, User-Name = alice, Acct-Session-Id = "fr1", Acct-Input-Octets = 10, '
                "Acct-Input-Gigawords = 2, Acct-Output-Octets = 20, Acct-Session-Time = 30")
        assert "Received Accounting-Response" in _radclient(acct_port, "acct", stop)
        assert "Received Accounting-Response" in _radclient(acct_port, "acct", stop)  # again: stored once
    finally:
        proc.terminate()
        proc.wait(30)
    done = FinishedSession.objects.get()
    assert (done.subscription_id, done.nas_id, done.bytes_in, done.bytes_out) == (sub.pk, nas.pk, 2 * 2**32 + 10, 20)
    log = list(AuthAttempt.objects.order_by("at").values_list("outcome", "login", "method"))
    assert log[:2] == [("accept", "alice", "pap"), ("accept", "alice", "chap")], log
    assert [row[:2] for row in log[2:]] == [("reject", "alice"), ("reject", "nobody")], log
    reasons = list(AuthAttempt.objects.filter(outcome="reject").order_by("at").values_list("reason", flat=True))
    assert "tarifa: unknown login" in reasons[1], reasons


@pytest.mark.django_db
def test_odd_values_are_refused_without_an_error(rest):
    subscriber()
    odd = attrs(User_Name="alice", NAS_IP_Address="not-an-address")
    assert rest.post(URL + "authorize/", odd, format="json").status_code == 401
    assert rest.post(URL + "post-auth/", odd, format="json").status_code == 204
    nul = attrs(User_Name="ali\x00ce", NAS_IP_Address="127.0.0.1")
    assert rest.post(URL + "authorize/", nul, format="json").status_code in (400, 401)  # refused before or here
    big = attrs(Acct_Status_Type="Start", User_Name="alice", Acct_Session_Id="b1", NAS_IP_Address="127.0.0.1",
                Event_Timestamp=10**30, Acct_Input_Octets=-5)
    assert rest.post(URL + "accounting/", big, format="json").status_code == 204
    assert Session.objects.get().bytes_in == 0
