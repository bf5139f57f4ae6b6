"""A fault proxy between federation nodes (asyncio, on loopback): one listening port per directed link
(source → target), forwarding the source's HTTP requests to the target. Each node's registry points at the
proxy's port for the link to that peer, so every message crosses it (cluster.py). The harness switches
a link's mode at runtime:

- `pass`       forward the request, return the answer;
- `blackhole`  take the request and never answer (the sender times out);
- `reset`      take the request and reset the connection (TCP RST), forwarding nothing;
- `cut`        stop listening: connections are refused until the link is restored;
- `delay`      wait `delay_ms` before forwarding;
- `duplicate`  forward every request twice (two connections, one after the other) and return the second
               answer: the receiver must answer the copy as a duplicate, with the stored result;
- `reorder`    forward the request, then send a stale copy of it again `delay_ms` later (by then newer
               messages were applied): copies arrive out of order. A serial relay never sends message
               N+1 before N was acknowledged, so on the wire "reordered" means old copies arriving late.

A link can also get an `on_answer(status, body) -> bool` hook, called with the target's answer before it
is returned; when it returns True the answer is dropped and the source's connection reset (the harness
kills a process there: "a relay killed after the peer's 200", "a receiver killed after commit").

Requests are HTTP/1.1 with Content-Length and `Connection: close` (what the relay sends).
"""

import asyncio
import collections
import json
import socket
import threading
from dataclasses import dataclass, field

MODES = ("pass", "blackhole", "reset", "cut", "delay", "duplicate", "reorder")
MAX_HEAD = 64 * 1024


@dataclass
class Link:
    source: str
    target: str
    port: int
    mode: str = "pass"
    delay_ms: int = 0
    on_answer: object = None
    server: object = None
    stats: collections.Counter = field(default_factory=collections.Counter)
    held: list = field(default_factory=list)  # background tasks (stale copies), so they are not collected

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


class FaultProxy:
    def __init__(self, *, base_port: int | None = None):
        self.base_port = base_port
        self.links: dict[tuple[str, str], Link] = {}
        self.targets: dict[str, tuple[str, int]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    # -- life cycle (called from other threads) ---------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self.loop is None:
            return
        self._call(self._close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.loop = None

    def _call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def set_targets(self, targets: dict[str, tuple[str, int]]) -> None:
        """Where each node listens; a link (and its port) for every ordered pair of them."""
        self.targets.update(targets)
        codes = sorted(self.targets)
        for source in codes:
            for target in codes:
                if source != target and (source, target) not in self.links:
                    port = self._port(len(self.links))
                    link = Link(source, target, port)
                    self.links[(source, target)] = link
                    self._call(self._listen(link))

    def _port(self, index: int) -> int:
        if self.base_port:
            return self.base_port + index
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def url(self, source: str, target: str) -> str:
        return f"http://127.0.0.1:{self.links[(source, target)].port}"

    def describe(self) -> str:
        return ", ".join(f"{link.name} {link.port}" for link in self.links.values())

    # -- switching modes (thread-safe) ------------------------------------------------------------------------

    def set(self, source: str, target: str, mode: str, *, delay_ms: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self._call(self._set(self.links[(source, target)], mode, delay_ms))

    def set_all(self, mode: str, *, delay_ms: int | None = None, touching: str | None = None) -> None:
        """Every link (or every link to and from node `touching`) to `mode`."""
        for (source, target) in self.links:
            if touching is None or touching in (source, target):
                self.set(source, target, mode, delay_ms=delay_ms)

    def on_answer(self, source: str, target: str, hook) -> None:
        self.links[(source, target)].on_answer = hook

    def stats(self) -> dict:
        return {link.name: dict(link.stats) for link in self.links.values() if link.stats}

    async def _set(self, link: Link, mode: str, delay_ms):
        if delay_ms is not None:
            link.delay_ms = delay_ms
        previous, link.mode = link.mode, mode
        if mode == "cut" and link.server is not None:
            link.server.close()
            await link.server.wait_closed()
            link.server = None
        elif previous == "cut" and mode != "cut" and link.server is None:
            await self._listen(link)

    async def _listen(self, link: Link):
        async def handle(reader, writer):
            await self._handle(link, reader, writer)

        # reuse_address: a cut link listens again on its port at once.
        link.server = await asyncio.start_server(handle, "127.0.0.1", link.port, reuse_address=True)

    async def _close_all(self):
        for link in self.links.values():
            for task in link.held:
                task.cancel()
            if link.server is not None:
                link.server.close()
                await link.server.wait_closed()
                link.server = None

    # -- one connection ---------------------------------------------------------------------------------------

    @staticmethod
    async def _read_request(reader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        try:
            body = await reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return head + body

    async def _forward(self, link: Link, request: bytes) -> bytes | None:
        """The request to the target on a new connection; the whole answer (None: no answer)."""
        host, port = self.targets[link.target]
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            link.stats["target_refused"] += 1
            return None
        try:
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(-1), 60)
        except (OSError, asyncio.TimeoutError):
            link.stats["target_no_answer"] += 1
            return None
        finally:
            writer.close()
        if not answer:
            link.stats["target_no_answer"] += 1
            return None
        link.stats[f"answer_{_status(answer)}"] += 1
        return answer

    async def _stale_copy(self, link: Link, request: bytes, delay: float):
        await asyncio.sleep(delay)
        answer = await self._forward(link, request)
        link.stats["stale_copies"] += 1
        if answer is not None and b'"duplicate"' in answer:
            link.stats["stale_copies_answered_duplicate"] += 1

    async def _handle(self, link: Link, reader, writer):
        link.stats["requests"] += 1
        request = await self._read_request(reader)
        try:
            if request is None:
                return
            mode = link.mode
            if mode == "blackhole":
                link.stats["blackholed"] += 1
                await reader.read(-1)  # until the sender gives up
                return
            if mode == "reset":
                link.stats["reset"] += 1
                _reset(writer)
                return
            if mode == "cut":  # taken just before the cut
                _reset(writer)
                return
            if mode == "delay" and link.delay_ms:
                await asyncio.sleep(link.delay_ms / 1000)
            answer = await self._forward(link, request)
            if mode == "duplicate" and answer is not None:
                link.stats["duplicated"] += 1
                answer = await self._forward(link, request) or answer
            if mode == "reorder":
                delay = max(link.delay_ms, 200) / 1000
                task = asyncio.ensure_future(self._stale_copy(link, request, delay))
                link.held.append(task)
                task.add_done_callback(link.held.remove)
            if answer is None:
                _reset(writer)
                return
            if link.on_answer is not None and link.on_answer(_status(answer), _body(answer)):
                link.stats["answers_dropped"] += 1
                _reset(writer)
                return
            writer.write(answer)
            await writer.drain()
        except ConnectionError:
            link.stats["source_gone"] += 1
        finally:
            if not writer.is_closing():
                writer.close()


def _status(answer: bytes) -> int:
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def _body(answer: bytes) -> dict:
    try:
        data = json.loads(answer.partition(b"\r\n\r\n")[2] or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reset(writer) -> None:
    """Close with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
    writer.transport.abort()

