"""A stand-in NAS for tests and trials: it listens for CoA- and Disconnect-Requests on a UDP port
(loopback), decodes them with pyrad, checks their Request Authenticator and Message-Authenticator,
records them, and answers as told: ACK, NAK with an Error-Cause, or nothing at all.

    with NasListener(secret=b"s3cret", script=["silent", "ack"]) as nas:
        ... send to ("127.0.0.1", nas.port) ...
        nas.wait_for(2)            # blocks until two requests arrived (no sleeping)
        nas.received[0].attributes["Acct-Session-Id"]

`script` is consumed one request at a time ("ack", "silent", or ("nak", 503)); when it runs
out, `default` applies. It runs on its own thread and event loop, so synchronous code (Django
views, jobs, the test itself) can send to it.

`python -m tarifa.aaa.nas_listener --port 3799 --secret s3cret [--nak 503] [--silent]` runs one
in a terminal and prints each request it gets (for trying Tarifa by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import dataclass, field

from pyrad import packet as rp

from . import coa

_KIND = {rp.DisconnectRequest: coa.DISCONNECT, rp.CoARequest: coa.COA}


@dataclass
class Received:
    kind: str                       # disconnect / coa / other
    code: int
    id: int
    attributes: dict                # name → first value (readable)
    authenticator_ok: bool
    message_authenticator_ok: bool | None   # None: none present
    answer: str                     # ack / nak / silent
    raw: bytes = b""
    received_at: float = field(default_factory=time.time)


class NasListener:
    def __init__(self, *, secret: bytes | str, host: str = "127.0.0.1", port: int = 0,
                 script: list | None = None, default="ack", dict_=None):
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.host, self.port = host, port
        self.script = list(script or [])
        self.default = default
        self.dict = dict_ or coa.dictionary()
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport = None
        self._thread: threading.Thread | None = None
        self.on_receive = None      # optional callable(Received), on the listener's thread

    # -- life cycle
    def start(self) -> NasListener:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run():
            self._loop = asyncio.new_event_loop()
            try:
                self._transport, _ = self._loop.run_until_complete(self._loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=(self.host, self.port)))
                self.port = self._transport.get_extra_info("sockname")[1]
            except BaseException as exc:  # noqa: BLE001 — reported to start()'s caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._transport.close()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="nas-listener", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self):
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- waiting
    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` requests in all have arrived (AssertionError after `timeout`)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"the test NAS got {len(self.received)} request(s), expected {count}")
            return list(self.received)

    # -- on the listener's thread
    def _next_answer(self):
        with self._cond:
            return self.script.pop(0) if self.script else self.default

    def _handle(self, data: bytes, addr, transport):
        try:
            request = rp.CoAPacket(packet=data, secret=self.secret, dict=self.dict)
        except Exception:  # noqa: BLE001 — garbage is not recorded
            return
        auth_ok = request.VerifyCoARequest()
        ma_ok = request.verify_message_authenticator() if request.message_authenticator else None
        answer = self._next_answer()
        attrs = {}
        for key in request.keys():
            try:
                values = request[key]
            except Exception:  # noqa: BLE001
                continue
            name = key if isinstance(key, str) else str(key)
            attrs[name] = values[0] if len(values) == 1 else list(values)
        name = answer if isinstance(answer, str) else answer[0]
        got = Received(kind=_KIND.get(request.code, "other"), code=request.code, id=request.id,
                       attributes=attrs, authenticator_ok=auth_ok, message_authenticator_ok=ma_ok,
                       answer=name, raw=data)
        if name != "silent" and auth_ok and ma_ok is not False:
            reply = request.CreateReply()
            if name == "nak":
                reply.code = rp.DisconnectNAK if request.code == rp.DisconnectRequest else rp.CoANAK
                reply.AddAttribute("Error-Cause", int(answer[1]) if not isinstance(answer, str) else 503)
            reply.add_message_authenticator()
            transport.sendto(reply.ReplyPacket(), addr)
        with self._cond:
            self.received.append(got)
            self._cond.notify_all()
        if self.on_receive is not None:
            self.on_receive(got)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: NasListener):
        self.listener = listener
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.listener._handle(data, addr, self.transport)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A test NAS answering CoA/Disconnect-Requests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3799)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--nak", type=int, help="answer NAK with this Error-Cause")
    parser.add_argument("--silent", action="store_true", help="never answer")
    args = parser.parse_args(argv)
    default = "silent" if args.silent else ("nak", args.nak) if args.nak else "ack"
    listener = NasListener(secret=args.secret, host=args.host, port=args.port, default=default)
    listener.on_receive = lambda r: print(f"{time.strftime('%H:%M:%S')} {r.kind} id={r.id} "
                                          f"auth={'ok' if r.authenticator_ok else 'BAD'} "
                                          f"MA={r.message_authenticator_ok} answer={r.answer} {r.attributes}",
                                          flush=True)
    listener.start()
    print(f"test NAS listening on {args.host}:{listener.port}", flush=True)
    try:
        listener._thread.join()
    except KeyboardInterrupt:
        listener.stop()


if __name__ == "__main__":
    main()
