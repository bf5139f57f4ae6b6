"""RADIUS: Access-Requests and Accounting Interim-Updates against Tarifa's AAA server, next to
FreeRADIUS answering the same users.

In a fresh database `tarifa demo synth --accounts 10000` makes the operator: 10,000 internet
subscriptions with a login; the bench gives each a password (bulk UPDATE, encrypted as the
service does) and a NAS on 127.0.0.1 (MikroTik, a profile with a rate limit). Then:

- Tarifa: `tarifa aaa serve` in its own process on free ports. A load generator (this process,
  pyrad's codec, packets encoded beforehand) keeps BENCH_AAA_CLIENTS requests in flight
  (closed loop, each a PAP Access-Request with Message-Authenticator for a random active login)
  for BENCH_AAA_SECONDS; reports requests/s, p50/p99 latency, rejects.
- FreeRADIUS (Debian's `freeradius`, `make bench-deps`): the same users in its `files` module
  (Cleartext-Password and the same Mikrotik-Rate-Limit reply), `pap` and `chap`, Message-Authenticator
  required from the client, a config generated in a temp dir and started by the bench on other ports;
  the same load.
- Accounting into Tarifa: a Start for each of the 10,000 sessions, then an Interim-Update for each,
  BENCH_AAA_CLIENTS in flight; an Accounting-Response is sent only after its record is committed,
  so responses/s = records persisted/s.

Targets (issue 14): ≥ 5,000 Access-Requests/s, p99 ≤ 10 ms, ≥ 0.5 × FreeRADIUS; ≥ 5,000
accounting records/s persisted. On a shared 2-core machine the generator competes with the server
for the CPU: the figures are a floor.
"""

import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret"
SECONDS = float(os.environ.get("BENCH_AAA_SECONDS", "10"))
CLIENTS = int(os.environ.get("BENCH_AAA_CLIENTS", "32"))
ACCOUNTS = int(os.environ.get("BENCH_AAA_ACCOUNTS", "10000"))
ACCT_CLIENTS = int(os.environ.get("BENCH_AAA_ACCT_CLIENTS", "256"))
RATE = "5000k/20000k"


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_udp(port, packet: bytes, timeout=60.0) -> bool:
    """Until something answers `packet` on `port` (a Status-Server)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            sock.sendto(packet, ("127.0.0.1", port))
            try:
                sock.recv(4096)
                return True
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.2)
    return False


def status_server(dictionary) -> bytes:
    from pyrad import packet as rp

    pkt = rp.AuthPacket(code=rp.StatusServer, id=1, secret=SECRET.encode(), dict=dictionary,
                        authenticator=os.urandom(16))
    pkt.add_message_authenticator()
    return pkt.RequestPacket()


def access_requests(users, n, dictionary) -> list[bytes]:
    """n PAP Access-Requests with Message-Authenticator, each with its own authenticator (no cache hit)."""
    from pyrad import packet as rp

    out = []
    for i in range(n):
        login, password = users[random.randrange(len(users))]
        pkt = rp.AuthPacket(code=rp.AccessRequest, id=i % 256, secret=SECRET.encode(), dict=dictionary)
        pkt["User-Name"] = login
        pkt["User-Password"] = pkt.PwCrypt(password)
        pkt["NAS-IP-Address"] = "127.0.0.1"
        pkt.add_message_authenticator()
        out.append(pkt.RequestPacket())
    return out


def accounting_requests(users, status, dictionary) -> list[bytes]:
    from pyrad import packet as rp

    out = []
    for i, (login, _password) in enumerate(users):
        pkt = rp.AcctPacket(code=rp.AccountingRequest, id=i % 256, secret=SECRET.encode(), dict=dictionary)
        pkt["Acct-Status-Type"] = status
        pkt["User-Name"] = login
        pkt["Acct-Session-Id"] = f"bench-{i:06d}"
        pkt["Framed-IP-Address"] = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        pkt["Event-Timestamp"] = int(time.time())
        if status == "Interim-Update":
            pkt["Acct-Session-Time"] = 300
            pkt["Acct-Input-Octets"] = 1_000_000 + i
            pkt["Acct-Output-Octets"] = 3_000_000_000 + i
            pkt["Acct-Output-Gigawords"] = 1
        out.append(pkt.RequestPacket())
    return out


class _Client(asyncio.DatagramProtocol):
    """One socket, one request in flight at a time (a closed loop)."""

    def __init__(self, packets, results, done):
        self.packets, self.results, self.done = packets, results, done
        self.sent_at = 0.0

    def connection_made(self, transport):
        self.transport = transport
        self.next()

    def next(self):
        if not self.packets or self.done.is_set():
            return
        self.current = self.packets.pop()
        self.sent_at = time.perf_counter()
        self.transport.sendto(self.current)

    def datagram_received(self, data, addr):
        self.results.append((time.perf_counter() - self.sent_at, data[0]))
        self.next()


async def _load(port, packets, *, clients, seconds, retry_after=1.0):
    loop = asyncio.get_running_loop()
    results, done = [], asyncio.Event()
    chunks = [packets[i::clients] for i in range(clients)]
    transports = []
    protocols = []
    for chunk in chunks:
        transport, proto = await loop.create_datagram_endpoint(lambda c=chunk: _Client(c, results, done),
                                                               remote_addr=("127.0.0.1", port))
        transports.append(transport)
        protocols.append(proto)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds and len(results) < len(packets):
        await asyncio.sleep(0.05)
        now = time.perf_counter()
        for proto in protocols:  # a lost datagram: send it again
            if proto.sent_at and now - proto.sent_at > retry_after:
                proto.sent_at = now
                proto.transport.sendto(proto.current)
    elapsed = time.perf_counter() - start
    done.set()
    for transport in transports:
        transport.close()
    return results, elapsed


def measure(port, packets, *, clients=CLIENTS, seconds=SECONDS) -> dict:
    results, elapsed = asyncio.run(_load(port, packets, clients=clients, seconds=seconds))
    latencies = sorted(r[0] for r in results)
    codes = [r[1] for r in results]
    n = len(results)
    return {"requests": n, "per_s": round(n / elapsed, 1),
            "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
            "p99_ms": round(latencies[int(n * 0.99) - 1] * 1000, 2) if n >= 100 else None,
            "accepts": codes.count(2), "rejects": codes.count(3)}


# -- FreeRADIUS ----------------------------------------------------------------------------------

def freeradius_config(users, auth_port, acct_port) -> Path:
    """A FreeRADIUS 3 configuration in a temp dir: Debian's radiusd.conf and dictionaries, our
    clients, one virtual server (files, pap, chap), the users file."""
    source = Path("/etc/freeradius/3.0")
    tmp = Path(tempfile.mkdtemp(prefix="tarifa-bench-freeradius-"))
    conf = tmp / "raddb"
    shutil.copytree(source, conf, symlinks=True)
    for sub in ("sites-enabled", "mods-enabled"):
        for path in (conf / sub).iterdir():
            path.unlink()
    for module in ("files", "pap", "chap", "always", "expr"):
        (conf / "mods-enabled" / module).symlink_to(conf / "mods-available" / module)
    (conf / "sites-enabled" / "bench").write_text(f"""
server bench {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {auth_port}
    }}
    listen {{
        type = acct
        ipaddr = 127.0.0.1
        port = {acct_port}
    }}
    authorize {{
        files
        chap
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
        Auth-Type CHAP {{
            chap
        }}
    }}
    preacct {{
        ok
    }}
    accounting {{
        ok
    }}
    post-auth {{
        ok
    }}
}}
""")
    (conf / "clients.conf").write_text(f"""
client localhost {{
    ipaddr = 127.0.0.1
    secret = {SECRET}
    require_message_authenticator = yes
}}
""")
    lines = []
    for login, password in users:
        lines.append(f'{login} Cleartext-Password := "{password}"\n\tMikrotik-Rate-Limit = "{RATE}",\n'
                     f'\tAcct-Interim-Interval = 300\n')
    (conf / "mods-config" / "files" / "authorize").write_text("\n".join(lines))
    radiusd = (conf / "radiusd.conf").read_text()
    radiusd = radiusd.replace("\tuser = freerad", "\t#user = freerad").replace("\tgroup = freerad", "\t#group = freerad")
    radiusd = radiusd.replace("run_dir = ${localstatedir}/run/${name}", f"run_dir = {tmp / 'run'}")
    (conf / "radiusd.conf").write_text(radiusd)
    return conf


def start_freeradius(conf: Path, rundir: Path):
    binary = shutil.which("freeradius") or shutil.which("radiusd")
    if binary is None:
        return None
    rundir.mkdir(exist_ok=True)
    cmd = [binary, "-f", "-d", str(conf), "-l", str(rundir / "radius.log"), "-D", "/usr/share/freeradius"]
    env = dict(os.environ)
    return subprocess.Popen(cmd + ["-n", "radiusd"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            cwd=rundir)


def main() -> dict:
    from bench.run import database, setup_django

    setup_django()
    with database():
        from django.db import connection

        from tarifa.aaa import protocol
        from tarifa.aaa import services as aaa
        from tarifa.catalog.models import Tariff
        from tarifa.kernel.dburl import url_for
        from tarifa.kernel.secrets import encrypt
        from tarifa.subscriptions import synth

        print(f"synth: {ACCOUNTS} accounts …", flush=True)
        synth.run(accounts=ACCOUNTS, seed=1, actor="bench")
        with connection.cursor() as cur:
            cur.execute("SELECT id, login FROM subscriptions_subscription WHERE login <> '' AND status = 'active'")
            rows = cur.fetchall()
            cur.executemany("UPDATE subscriptions_subscription SET access_password = %s WHERE id = %s",
                            [(encrypt(f"pw-{login}"), pk) for pk, login in rows])
        users = [(login, f"pw-{login}") for _pk, login in rows]
        aaa.create_nas(actor="bench", name="Bench NAS", ip_address="127.0.0.1", secret=SECRET, type="mikrotik")
        for tariff in Tariff.objects.filter(service__service_type__category="internet"):
            aaa.create_profile(actor="bench", name=f"Bench {tariff.code}", tariff=tariff, rate_down_kbps=20_000,
                               rate_up_kbps=5_000, interim_interval=300)
        print(f"{len(users)} active subscribers with a password", flush=True)
        dictionary = protocol.dictionary()
        n_auth = int(SECONDS * 20_000)
        packets = access_requests(users, n_auth, dictionary)

        figures = {"subscribers": len(users), "clients_in_flight": CLIENTS, "seconds": SECONDS}
        url = url_for(connection.settings_dict)
        auth_port, acct_port = _udp_port(), _udp_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TARIFA_TEST_"))}
        env["DATABASE_URL"] = url
        tarifa = subprocess.Popen([sys.executable, "-m", "tarifa.cli", "aaa", "serve", "--auth-port", str(auth_port),
                                   "--acct-port", str(acct_port)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        try:
            assert _wait_udp(auth_port, status_server(dictionary)), "Tarifa's RADIUS server did not answer"
            measure(auth_port, packets[:2000], seconds=3)  # warm-up
            result = measure(auth_port, list(packets))
            print("tarifa auth:", result, flush=True)
            figures.update({f"tarifa_auth_{k}": v for k, v in result.items()})
            for status in ("Start", "Interim-Update"):
                acct = accounting_requests(users, status, dictionary)
                result = measure(acct_port, acct, clients=ACCT_CLIENTS, seconds=120)
                print(f"tarifa accounting {status}:", result, flush=True)
                key = "start" if status == "Start" else "interim"
                figures[f"tarifa_acct_{key}_records"] = result["requests"]
                figures[f"tarifa_acct_{key}_per_s"] = result["per_s"]
                figures[f"tarifa_acct_{key}_p99_ms"] = result["p99_ms"]
            with connection.cursor() as cur:
                cur.execute("SELECT count(*), sum(bytes_out) FROM aaa_session")
                count, total = cur.fetchone()
            figures["tarifa_open_sessions"] = count
            figures["tarifa_bytes_out_stored"] = int(total or 0)
        finally:
            tarifa.send_signal(signal.SIGTERM)
            tarifa.wait(30)

        fr_auth, fr_acct = _udp_port(), _udp_port()
        conf = freeradius_config(users, fr_auth, fr_acct)
        process = start_freeradius(conf, conf.parent / "run")
        if process is None:
            print("FreeRADIUS is not installed (make bench-deps): no baseline", flush=True)
            figures["freeradius_auth_per_s"] = None
        else:
            try:
                if not _wait_udp(fr_auth, status_server(dictionary), timeout=60):
                    raise RuntimeError("FreeRADIUS did not start: " + process.stderr.read1(4000).decode(errors="replace")
                                       if process.poll() is not None else "FreeRADIUS does not answer")
                measure(fr_auth, packets[:2000], seconds=3)
                result = measure(fr_auth, list(packets))
                print("freeradius auth:", result, flush=True)
                figures.update({f"freeradius_auth_{k}": v for k, v in result.items()})
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
                shutil.rmtree(conf.parent, ignore_errors=True)
        if figures.get("freeradius_auth_per_s"):
            figures["tarifa_vs_freeradius"] = round(figures["tarifa_auth_per_s"] / figures["freeradius_auth_per_s"], 2)
        return figures
