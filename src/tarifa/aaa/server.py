"""The RADIUS server (`tarifa aaa serve`, started by `tarifa run`): asyncio UDP on pyrad's codec.

Authentication (port 1812) is answered from memory: a snapshot of the NAS, the subscribers'
credentials and profiles (`selectors.load_snapshot`), reloaded when PostgreSQL notifies a change
(triggers on the tables it reads send NOTIFY tarifa_aaa, migration 0002) and every minute anyway.
No database round trip is on the path of an Access-Request; the authentication log is written
in batches (COPY) a few times a second.

- PAP, CHAP and MS-CHAPv2 (with MPPE keys). Message-Authenticator is required on every
  Access-Request (BlastRADIUS, CVE-2024-3596): one
  without it is rejected, one with a wrong one (a wrong secret) is dropped; replies carry it
  first. Requests from an address that is no active NAS are dropped and logged.
- Accounting (port 1813): the Request Authenticator is verified; records are queued and applied
  in batches (`services.apply_accounting`, one transaction every few milliseconds); each
  Accounting-Response is sent only after its batch committed, so a record the NAS saw
  acknowledged is stored.
- Retransmissions (same source, identifier and authenticator) are answered from a reply cache and
  never processed twice; while the first copy is still being processed they are dropped.
- Status-Server (RFC 5997) on both ports, Message-Authenticator required.
- Sessions silent for longer than interim × TARIFA_AAA_STALE_FACTOR are closed every minute.
"""

import asyncio
import logging
import signal
import socket
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections, connection
from pyrad import packet as rp

from . import mschap, prepaid, protocol, selectors, services
from .decision import decide

log = logging.getLogger("tarifa.aaa")

ACCT_BATCH = 1000  # records per transaction at most
ACCT_WAIT = 0.005  # seconds a batch waits for more records
AUTH_LOG_EVERY = 0.25
RELOAD_DEBOUNCE = 0.2
RELOAD_EVERY = 60.0
STALE_EVERY = 60.0
NOTIFY_CHANNEL = "tarifa_aaa"


class Stats:
    def __init__(self):
        self.accepted = self.rejected = self.dropped = self.retransmitted = 0
        self.acct = self.acct_duplicates = 0


class AuthProtocol(asyncio.DatagramProtocol):
    def __init__(self, server):
        self.server = server

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            reply = self.server.authenticate(data, addr, self.transport)
        except Exception:  # a malformed packet must never stop the server
            log.exception("Access-Request from %s could not be handled", addr[0])
            return
        if reply is not None:
            self.transport.sendto(reply, addr)


class AcctProtocol(asyncio.DatagramProtocol):
    def __init__(self, server):
        self.server = server

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            reply = self.server.account(data, addr, self.transport)
        except Exception:
            log.exception("Accounting-Request from %s could not be handled", addr[0])
            return
        if reply is not None:
            self.transport.sendto(reply, addr)


class RadiusServer:
    def __init__(self, *, bind=None, auth_port=None, acct_port=None):
        self.bind = bind or settings.TARIFA_AAA_BIND
        self.auth_port = settings.TARIFA_AAA_AUTH_PORT if auth_port is None else auth_port
        self.acct_port = settings.TARIFA_AAA_ACCT_PORT if acct_port is None else acct_port
        self.dict = protocol.dictionary()
        self.cache = protocol.ReplyCache()
        self.snapshot = selectors.Snapshot()
        self.stats = Stats()
        self.auth_log: list = []
        self.encoded: dict = {}
        self.unknown_logged: dict = {}
        self.seen: dict = {}
        self.acct_queue: list = []
        self.acct_wakeup: asyncio.Event | None = None
        self.reload_wanted: asyncio.Event | None = None
        # One thread owns the database connection: batches, reloads and the log never interleave.
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aaa-db")
        self.stopping = False

    # -- database work (in the db thread) ------------------------------------------------------

    async def in_db(self, func, *args, **kwargs):
        def run():
            close_old_connections()
            try:
                return func(*args, **kwargs)
            except Exception:
                connection.close()  # a broken connection is opened again next time
                raise
        return await asyncio.get_running_loop().run_in_executor(self.db, run)

    async def reload(self):
        snap = await self.in_db(selectors.load_snapshot, self.snapshot)
        self.snapshot = snap
        self.encoded = {}
        log.info("snapshot: %d NAS, %d subscribers, %d open sessions", len(snap.nas), len(snap.subscribers),
                 sum(snap.open_sessions.values()))

    # -- authentication ----------------------------------------------------------------------------

    def _log(self, outcome, reason, *, login="", nas=None, ip=None, sub=None, station="", method=""):
        self.auth_log.append((time.time(), outcome, reason[:200], login[:100], nas.id if nas else None, ip,
                              sub.subscription_id if sub else None, station[:64], method))

    def _unknown_nas(self, ip):
        last = self.unknown_logged.get(ip, 0)
        if time.monotonic() - last > 60:  # at most once a minute per address
            self.unknown_logged[ip] = time.monotonic()
            log.warning("RADIUS request from %s ignored: no active NAS has this address", ip)
            self._log("ignored", "unknown NAS", ip=ip)

    def authenticate(self, data: bytes, addr, transport=None) -> bytes | None:
        if len(data) < 20:
            return None
        key = self.cache.key(addr, data)
        if key in self.cache:
            self.stats.retransmitted += 1
            return self.cache.get(key)  # None while a prepaid reservation is under way: dropped
        ip = addr[0]
        nas = self.snapshot.nas.get(ip)
        if nas is None:
            self._unknown_nas(ip)
            return None
        self.seen[nas.id] = time.time()
        try:
            # Decoded without the dictionary: the server reads attributes by code, and pyrad then skips
            # its per-attribute dictionary look-ups (vendor attributes stay raw).
            pkt = rp.AuthPacket(packet=data, secret=nas.secret)
        except rp.PacketError:
            self.stats.dropped += 1
            return None
        if pkt.code == rp.StatusServer:
            if not (pkt.message_authenticator and pkt.verify_message_authenticator()):
                self.stats.dropped += 1
                return None
            reply = pkt.CreateReply()
            reply.code = rp.AccessAccept
            out = reply.ReplyPacket()
            self.cache.put(key, out)
            return out
        if pkt.code != rp.AccessRequest:
            self.stats.dropped += 1
            return None
        login = protocol.user_name(pkt)
        station = protocol.calling_station(pkt)
        if not pkt.message_authenticator:
            return self._reject(pkt, key, "missing Message-Authenticator", login=login, nas=nas, ip=ip,
                                station=station)
        if not pkt.verify_message_authenticator():
            self.stats.dropped += 1
            self._log("ignored", "bad Message-Authenticator (wrong secret?)", login=login, nas=nas, ip=ip,
                      station=station)
            return None
        sub = self.snapshot.subscribers.get(login)
        decision = decide(sub, station=station, open_sessions=self.snapshot.open_sessions.get(login, 0))
        if decision.unknown:
            return self._reject(pkt, key, decision.reason, login=login, nas=nas, ip=ip, station=station)
        mschap_request = self._mschap_request(data, pkt, nas) if OrderedDict.__contains__(pkt, 26) else None
        success = None
        if mschap_request is not None:
            full, challenge, response = mschap_request
            method = "mschapv2"
            ok, success = mschap.verify(username=login, password=sub.password, authenticator_challenge=challenge,
                                        response=response)
        else:
            method, ok = protocol.check_password(pkt, sub.password)
        if not method:
            return self._reject(pkt, key, "no PAP, CHAP or MS-CHAPv2 credentials", login=login, nas=nas, ip=ip, sub=sub,
                                station=station)
        if not ok:
            return self._reject(pkt, key, "wrong password", login=login, nas=nas, ip=ip, sub=sub, station=station,
                                method=method)
        if not decision.accept:
            return self._reject(pkt, key, decision.reason, login=login, nas=nas, ip=ip, sub=sub, station=station,
                                method=method)
        pay_first = decision.pay_first
        if sub.prepaid and not pay_first and transport is not None:
            # Prepaid on a rated tariff: the quota is reserved in the database first (aaa.prepaid).
            self.cache.put(key, None)
            asyncio.get_running_loop().create_task(self._prepaid_accept(
                pkt, key, addr, transport, sub=sub, nas=nas, ip=ip, login=login, station=station, method=method,
                capped=decision.capped,
                full=full if success is not None else None, success=success,
                response=response if success is not None else None))
            return None
        return self._accept(pkt, key, sub=sub, nas=nas, ip=ip, login=login, station=station, method=method,
                            pay_first=pay_first, capped=decision.capped, reason=decision.reason,
                            full=full if success is not None else None, success=success,
                            response=response if success is not None else None)

    def _accept(self, pkt, key, *, sub, nas, ip, login, station, method, pay_first, reason, full=None,
                success=None, response=None, extra=(), capped=False) -> bytes:
        """The Access-Accept: the profile's attributes, then `extra` ((name, value): a prepaid grant,
        its Session-Timeout replacing a longer one of the profile)."""
        reply = _reply(pkt, rp.AccessAccept) if success is None else full.CreateReply()  # Message-Authenticator first
        attributes = self._accept_attributes(sub, nas.type, pay_first, capped)
        if extra:
            template = rp.AuthPacket(dict=self.dict, secret=b"-")
            for name, value in extra:
                if name == "Session-Timeout":
                    profile_timeout = next((v for c, v in attributes if c == protocol.SESSION_TIMEOUT), None)
                    if profile_timeout and int.from_bytes(profile_timeout[0], "big") < value:
                        continue
                    attributes = [(c, v) for c, v in attributes if c != protocol.SESSION_TIMEOUT]
                template.AddAttribute(name, value)
            attributes += [(code, list(values)) for code, values in OrderedDict.items(template)]
        for code, values in attributes:
            OrderedDict.__setitem__(reply, code, values)
        if success is not None:  # MS-CHAPv2: the authenticator response and the MPPE keys (RFC 2548)
            send_key, recv_key = mschap.mppe_keys(sub.password, response[26:50])
            reply.AddAttribute("MS-CHAP2-Success", success)
            reply.AddAttribute("MS-MPPE-Send-Key", send_key)
            reply.AddAttribute("MS-MPPE-Recv-Key", recv_key)
            reply.AddAttribute("MS-MPPE-Encryption-Policy", "Encryption-Allowed")
            reply.AddAttribute("MS-MPPE-Encryption-Types", "RC4-40or128-bit-Allowed")
        out = reply.ReplyPacket()
        self.cache.put(key, out)
        self.stats.accepted += 1
        self._log("accept", reason, login=login, nas=nas, ip=ip,
                  sub=sub, station=station, method=method)
        return out

    async def _prepaid_accept(self, pkt, key, addr, transport, *, sub, nas, ip, login, station, method, capped=False,
                              **mschap_):
        """Reserve the prepaid quota, then answer: Accept with the grant, Reject "balance exhausted"."""
        logged = dict(login=login, nas=nas, ip=ip, sub=sub, station=station, method=method)
        try:
            grant = await self.in_db(
                prepaid.authorize, subscription_id=sub.subscription_id, login=login, nas_ip=ip, nas_type=nas.type,
                acct_session_id=protocol.acct_session_id(pkt), token=pkt.authenticator.hex()[:16],
                interim=sub.profile.interim_interval)
        except Exception:
            log.exception("prepaid reservation for %s failed", login)
            self.cache._items.pop(key, None)  # nothing answered: the NAS retries
            return
        if grant is not None and not grant.accept:
            out = self._reject(pkt, key, grant.reason, **logged)
        else:
            out = self._accept(pkt, key, pay_first=False, capped=capped, reason=grant.reason if grant else "",
                               extra=grant.attributes if grant else (), **logged, **mschap_)
        transport.sendto(out, addr)

    def _mschap_request(self, data, pkt, nas):
        """(packet decoded with the dictionary, MS-CHAP-Challenge, MS-CHAP2-Response) when the request
        carries MS-CHAPv2 credentials (vendor attributes, decoded by pyrad with the dictionary)."""
        full = rp.AuthPacket(packet=data, dict=self.dict, secret=nas.secret)
        challenge = OrderedDict.get(full, (311, 11))
        response = OrderedDict.get(full, (311, 25))
        if challenge and response:
            return full, challenge[0], response[0]
        return None

    def _accept_attributes(self, sub, nas_type, pay_first, capped=False) -> list:
        """The Accept's attributes encoded by pyrad once per (profile, NAS type, address, pool, pay-first,
        capped)."""
        key = (sub.profile.id, nas_type, sub.static_ip, sub.pool, pay_first, capped)
        encoded = self.encoded.get(key)
        if encoded is None:
            template = rp.AuthPacket(dict=self.dict, secret=b"-")
            for name, value in protocol.reply_attributes(sub.profile, nas_type, static_ip=sub.static_ip,
                                                         pool=sub.pool, pay_first=pay_first, capped=capped):
                template.AddAttribute(name, value)
            encoded = self.encoded[key] = [(code, tuple(values)) for code, values in OrderedDict.items(template)]
        return [(code, list(values)) for code, values in encoded]

    def _reject(self, pkt, key, reason, **logged) -> bytes:
        out = _reply(pkt, rp.AccessReject).ReplyPacket()
        self.cache.put(key, out)
        self.stats.rejected += 1
        self._log("reject", reason, **logged)
        return out

    # -- accounting --------------------------------------------------------------------------------

    def account(self, data: bytes, addr, transport) -> bytes | None:
        if len(data) < 20:
            return None
        key = self.cache.key(addr, data)
        if key in self.cache:
            cached = self.cache.get(key)
            self.stats.retransmitted += 1
            return cached  # None while the first copy waits for its batch: dropped, the NAS retries
        ip = addr[0]
        nas = self.snapshot.nas.get(ip)
        if nas is None:
            self._unknown_nas(ip)
            return None
        self.seen[nas.id] = time.time()
        try:
            pkt = rp.AcctPacket(packet=data, secret=nas.secret)
        except rp.PacketError:
            self.stats.dropped += 1
            return None
        if pkt.code == rp.StatusServer:
            if not (pkt.message_authenticator and pkt.verify_message_authenticator()):
                self.stats.dropped += 1
                return None
            out = pkt.CreateReply().ReplyPacket()
            self.cache.put(key, out)
            return out
        if pkt.code != rp.AccountingRequest or not pkt.VerifyAcctRequest():
            self.stats.dropped += 1
            self._log("ignored", "accounting authenticator does not verify (wrong secret?)", nas=nas, ip=ip)
            return None
        if pkt.message_authenticator and not pkt.verify_message_authenticator():
            self.stats.dropped += 1
            return None
        record = protocol.accounting_record(pkt, nas_id=nas.id, received=time.time())
        reply = pkt.CreateReply().ReplyPacket()
        self.cache.put(key, None)
        self.acct_queue.append((record, key, reply, addr, transport))
        if self.acct_wakeup is not None:
            self.acct_wakeup.set()
        return None

    async def acct_flusher(self):
        while not self.stopping or self.acct_queue:
            await self.acct_wakeup.wait()
            self.acct_wakeup.clear()
            if len(self.acct_queue) < ACCT_BATCH:
                await asyncio.sleep(ACCT_WAIT)
            while self.acct_queue:
                batch, self.acct_queue = self.acct_queue[:ACCT_BATCH], self.acct_queue[ACCT_BATCH:]
                try:
                    result = await self.in_db(services.apply_accounting, [b[0] for b in batch],
                                              logins=self.snapshot.login_ids)
                except Exception:
                    log.exception("an accounting batch of %d records failed; the NAS will retransmit", len(batch))
                    for _rec, key, _reply, _addr, _t in batch:
                        self.cache._items.pop(key, None)
                    await asyncio.sleep(0.5)
                    continue
                await self._charge_prepaid([b[0] for b in batch])
                counts = self.snapshot.open_sessions
                for login, delta in result["delta"].items():
                    counts[login] = max(0, counts.get(login, 0) + delta)
                self.stats.acct += len(batch)
                self.stats.acct_duplicates += result["duplicates"]
                for _rec, key, reply, addr, transport in batch:
                    self.cache.put(key, reply)
                    transport.sendto(reply, addr)

    async def _charge_prepaid(self, records):
        """Prepaid logins' records (and NAS restarts) are charged online once the batch is stored."""
        subscribers = self.snapshot.subscribers
        prepaid_logins = {}
        for rec in records:
            sub = subscribers.get(rec.login)
            if sub is not None and sub.prepaid:
                prepaid_logins[rec.login] = sub.profile.interim_interval
        restarts = any(rec.status in (protocol.ACCOUNTING_ON, protocol.ACCOUNTING_OFF) for rec in records)
        if not prepaid_logins and not restarts:
            return
        nas = {entry.id: (ip, entry.type) for ip, entry in self.snapshot.nas.items()}
        try:
            exhausted = await self.in_db(prepaid.account, records, nas=nas, prepaid=prepaid_logins)
            if exhausted:
                await self.in_db(prepaid.disconnect, exhausted)
        except Exception:
            log.exception("prepaid accounting failed for a batch of %d records", len(records))

    # -- housekeeping --------------------------------------------------------------------------------

    async def auth_log_writer(self):
        while not self.stopping:
            await asyncio.sleep(AUTH_LOG_EVERY)
            await self.flush_auth_log()

    async def flush_auth_log(self):
        rows, self.auth_log = self.auth_log, []
        seen, self.seen = self.seen, {}
        try:
            if rows:
                await self.in_db(services.log_attempts, rows)
            if seen:
                await self.in_db(services.touch_nas, {k: _ts(v) for k, v in seen.items()})
        except Exception:
            log.exception("the authentication log could not be written (%d attempts lost)", len(rows))

    async def reloader(self):
        last = time.monotonic()
        while not self.stopping:
            try:
                await asyncio.wait_for(self.reload_wanted.wait(), timeout=RELOAD_EVERY)
                await asyncio.sleep(RELOAD_DEBOUNCE)
            except TimeoutError:
                pass
            self.reload_wanted.clear()
            try:
                await self.reload()
            except Exception:
                log.exception("the snapshot could not be reloaded; answering from the previous one")
            if time.monotonic() - last > STALE_EVERY:
                last = time.monotonic()
                try:
                    closed = await self.in_db(services.close_stale_sessions)
                    if closed:
                        log.info("closed %d stale sessions", closed)
                except Exception:
                    log.exception("stale sessions could not be closed")

    async def listener(self):
        """LISTEN tarifa_aaa on its own connection; every notification asks for a reload."""
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        while not self.stopping:
            try:
                conn = await psycopg.AsyncConnection.connect(autocommit=True, **params)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.reload_wanted.set()  # anything missed while not listening
                    async for _note in conn.notifies():
                        self.reload_wanted.set()
            except Exception as err:
                if self.stopping:
                    return
                log.warning("LISTEN %s failed (%s); retrying in 5 s", NOTIFY_CHANNEL, err)
                await asyncio.sleep(5)

    # -- running -------------------------------------------------------------------------------------

    async def start(self):
        loop = asyncio.get_running_loop()
        self.acct_wakeup = asyncio.Event()
        self.reload_wanted = asyncio.Event()
        await self.reload()
        self.auth_transport, _ = await loop.create_datagram_endpoint(
            lambda: AuthProtocol(self), sock=_socket(self.bind, self.auth_port))
        self.acct_transport, _ = await loop.create_datagram_endpoint(
            lambda: AcctProtocol(self), sock=_socket(self.bind, self.acct_port))
        self.auth_port = self.auth_transport.get_extra_info("sockname")[1]
        self.acct_port = self.acct_transport.get_extra_info("sockname")[1]
        self.tasks = [asyncio.create_task(t) for t in (self.acct_flusher(), self.auth_log_writer(), self.reloader(),
                                                       self.listener())]
        log.info("RADIUS on %s: authentication %d, accounting %d", self.bind, self.auth_port, self.acct_port)

    async def stop(self):
        self.stopping = True
        self.auth_transport.close()
        self.acct_transport.close()
        self.acct_wakeup.set()
        self.reload_wanted.set()
        await asyncio.sleep(ACCT_WAIT * 2)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.acct_queue:  # what is queued is stored before the server goes
            batch, self.acct_queue = self.acct_queue, []
            try:
                await self.in_db(services.apply_accounting, [b[0] for b in batch], logins=self.snapshot.login_ids)
            except Exception:
                log.exception("the last accounting batch could not be stored")
        await self.flush_auth_log()
        await asyncio.get_running_loop().run_in_executor(self.db, lambda: connection.close())  # the db thread's
        self.db.shutdown(wait=True)

    async def serve_forever(self, ready=None):
        self._loop = asyncio.get_running_loop()
        self._done = done = asyncio.Event()
        await self.start()
        if ready is not None:
            ready(self)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, done.set)
            except (ValueError, RuntimeError):  # not in the main thread (tests)
                pass
        await done.wait()
        await self.stop()

    def shutdown(self):
        """From another thread: stop serve_forever."""
        self._loop.call_soon_threadsafe(self._done.set)


def _reply(pkt, code):
    """pyrad's reply to `pkt` (its id, authenticator, secret and Proxy-State) signed with a
    Message-Authenticator, without the dictionary: attributes are set encoded."""
    reply = rp.AuthPacket(code, pkt.id, pkt.secret, pkt.authenticator)
    reply.message_authenticator = True
    return pkt._PrepareReply(reply, {})


def _socket(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def _ts(seconds):
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def run(*, bind=None, auth_port=None, acct_port=None, ready=None):
    """Serve until SIGINT/SIGTERM."""
    server = RadiusServer(bind=bind, auth_port=auth_port, acct_port=acct_port)

    async def main():
        await server.serve_forever(ready)

    asyncio.run(main())
    return server

