"""A running RADIUS server in a thread, radclient (Debian's freeradius-utils) as the real peer, and
the subscriber data the tests log in with."""

import socket
import subprocess
import threading
import time
from contextlib import contextmanager

from pyrad import packet as rp

from tarifa.aaa import protocol, services
from tarifa.aaa.server import run
from tarifa.subscriptions import services as subscriptions
from tarifa.subscriptions.tests.helpers import customer_account, make_catalog

SECRET = "testing123"
ACTOR = "test"


def subscriber(login="alice", password="wonderland", tariff_code="NET-31", **identifiers):
    """An active internet subscription with a login and password, a NAS on 127.0.0.1 (MikroTik) and a
    profile for its tariff; returns (subscription, nas, profile)."""
    tariffs = make_catalog()
    account = customer_account(payment_mode="postpaid", credit_limit="1000")
    sub = subscriptions.create_subscription(actor=ACTOR, billing_account=account, tariff=tariffs[tariff_code],
                                            login=login, password=password, activate=True, **identifiers)
    nas = services.create_nas(actor=ACTOR, name="Test BRAS", ip_address="127.0.0.1", secret=SECRET,
                              type="mikrotik")
    profile = services.create_profile(actor=ACTOR, name="Net 31", tariff=tariffs[tariff_code], rate_down_kbps=20_000,
                                      rate_up_kbps=5_000, ip_pool="home", interim_interval=60)
    return sub, nas, profile


@contextmanager
def running_server():
    """`tarifa aaa serve` in a thread on free ports (127.0.0.1), stopped at the end."""
    started, box = threading.Event(), {}

    def ready(server):
        box["server"] = server
        started.set()

    def target():
        try:
            run(bind="127.0.0.1", auth_port=0, acct_port=0, ready=ready)
        except BaseException as err:  # shown by the assertion below
            box["error"] = err
            started.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert started.wait(60), "the RADIUS server did not start"
    assert "error" not in box, box.get("error")
    server = box["server"]
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(60)


def wait_for(condition, timeout=20.0, what="the condition"):
    """Wait until condition() is true (the server's snapshot reload, its log writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def radclient(server, kind, attributes, *, secret=SECRET, timeout=3, retries=1) -> str:
    """radclient's verbose output for one request (`kind`: auth, acct, status)."""
    port = server.acct_port if kind == "acct" else server.auth_port
    result = subprocess.run(["radclient", "-x", "-r", str(retries), "-t", str(timeout), f"127.0.0.1:{port}", kind,
                             secret], input=attributes, capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def udp_exchange(port, data: bytes, *, source="127.0.0.1", timeout=2.0) -> bytes | None:
    """Send one datagram from `source`, return the answer or None when none came within `timeout`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def access_request(login, password, *, secret=SECRET, message_authenticator=True, packet_id=1) -> bytes:
    pkt = rp.AuthPacket(code=rp.AccessRequest, id=packet_id, secret=secret.encode(), dict=protocol.dictionary())
    pkt["User-Name"] = login
    pkt["User-Password"] = pkt.PwCrypt(password)
    if message_authenticator:
        pkt.add_message_authenticator()
    return pkt.RequestPacket()


def accounting_request(secret=SECRET, packet_id=1, **attributes) -> bytes:
    pkt = rp.AcctPacket(code=rp.AccountingRequest, id=packet_id, secret=secret.encode(), dict=protocol.dictionary())
    for name, value in attributes.items():
        pkt[name.replace("_", "-")] = value
    return pkt.RequestPacket()
