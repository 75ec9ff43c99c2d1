"""netguard's gunicorn worker: gthread whose threads only ever wait for clients that are sending.

gthread hands every accepted connection to a thread, which then blocks with no time limit in the
TLS handshake, the request head and the body: four clients per worker that send 6 bytes of a
ClientHello (or half a head, or half a body) held every thread, and /validate and /healthz timed
out. This worker keeps everything a client can stall in the worker's event loop, without a thread:

- **handshake**: non-blocking, driven by the poller; it must end within
  `server.handshake_timeout_seconds` of the accept (a silent TCP connection is gone after it too);
- **idle**: a connection with no request bytes (after the handshake, or kept alive after a
  request) waits in the poller for `server.keepalive_seconds`; at most
  `server.max_idle_connections` of them, and at `server.max_connections` the oldest idle
  connections close to make room (an idle connection has no request in flight: a client reopens);
- **head**: read without blocking from its first byte until the blank line, within
  `server.head_timeout_seconds`;
- **body**: read without blocking too (Content-Length or chunked, up to the listener's size limit),
  within `server.body_timeout_seconds` of the head's end; past it the client gets a 408. Only a
  whole request is queued for a thread (a body over the limit, or a malformed framing, is queued at
  once so the app answers 413/400 without reading it). Measured with `make bench-hostile`: when the
  thread read the body, 4 clients per worker sending half a body held every thread for the body
  time limit and ordinary reviews were shed.

A thread's reads come from that buffer; every socket operation of a thread still has the body
timeout, so a client that does not read its answer cannot hold a thread either. The time
a complete request waited for a thread reaches the app as `netguard.queue_wait` (load shedding,
server.py), and the listener as `netguard.listener`: POST /v1/check has its own listener and
thread pool (`server.check_bind`, `server.check.threads`), so it never takes admission's threads.

With `server.client_ca`, the admission listener's TLS context verifies client certificates against
that CA (webhook/serve/tls.py; the check listener's does not ask). A certificate that does not verify fails
the handshake; one that does is recorded on the connection, and each of its requests reaches the app
with `netguard.authenticated` True and `netguard.client_cn` (the subject's CN). Without a certificate
the handshake succeeds (the kubelet's probes have none) and the app refuses admission paths.

It also keeps the open-connection count right, so SIGTERM drains: gunicorn 27 counted one
connection twice when a handshake met EOF, and a negative count ended the worker at once.

Size: over 400 lines because it subclasses gunicorn's gthread worker in one place: the event loop, the
handshake and head deadlines, the idle cap and the connection accounting must change together to keep SIGTERM
draining right.
"""

from __future__ import annotations

import contextlib
import errno
import io
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.errors import NoMoreData
from gunicorn.sock import ssl_context
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn
from gunicorn.workers.gthread import ThreadWorker as _GthreadWorker

from webhook import config
from webhook.serve import spread, tls

MAX_HEAD_BYTES = 64 * 1024  # a request head longer than this is refused (431) before any thread sees it
POLL_INTERVAL = 0.2  # deadlines are enforced within this much
SPREAD_EVERY = 0.005  # how often the loop compares its connections with the other workers' (webhook/serve/spread.py)
RECV_SIZE = 64 * 1024

HANDSHAKE, IDLE, HEAD, BODY, THREAD, LINGER = "handshake", "idle", "head", "body", "thread", "linger"
LINGER_SECONDS, LINGER_BYTES = 2.0, 64 * 1024  # gunicorn's close_graceful, without blocking the loop
ADMISSION, CHECK = "admission", "check"

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def _port(bind: str) -> int | None:
    _host, sep, port = bind.rpartition(":")
    return int(port) if sep and port.isdigit() else None


def _head_end(buf: bytearray, start: int) -> int:
    """The index just past the head's blank line, or -1."""
    crlf, lf = buf.find(b"\r\n\r\n", start), buf.find(b"\n\n", start)
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else -1


def _framing(head: bytes) -> tuple[str, int]:
    """How the body is delimited (RFC 9112 6.3): chunked wins over a length; none means no body."""
    length: int | None = None
    chunked = False
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        field = name.strip().lower()
        if field == b"content-length":
            text = value.strip()
            if not text.isdigit() or (length is not None and int(text) != length):
                return "bad", 0
            length = int(text)
        elif field == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        return "chunked", 0
    return ("length", length) if length is not None else ("none", 0)


def _chunked_complete(buf: bytearray, pos: int) -> bool:
    """Has the whole chunked body (up to the last chunk and its trailer section) arrived?"""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return False
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True  # malformed: the thread's parser answers 400
        if size == 0:
            return buf.find(b"\r\n\r\n", eol) >= 0  # "0\r\n" + trailers + "\r\n" (no trailers: "0\r\n\r\n")
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return False


class _Conn(TConn):  # type: ignore[misc]  # gunicorn ships no type hints
    """A connection and where it is: handshake, idle, head (event loop) or thread."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, listener: str) -> None:
        super().__init__(cfg, sock, client, server)
        self.listener = listener
        self.phase = HANDSHAKE
        self.deadline = 0.0  # of the current phase (idle: the keep-alive end)
        self.head = bytearray()
        self.body_start = 0  # where the body begins in `head` once the head is complete
        self.framing, self.length = "none", 0  # how the body is delimited: none, length, chunked, bad
        self.queued_at = 0.0
        self.drained = 0
        self.events = selectors.EVENT_READ
        self.authenticated = False  # a client certificate verified against server.client_ca
        self.client_cn: str | None = None


class _ListenerConf:
    """gunicorn's configuration with another ssl_context hook: gunicorn.sock.ssl_context builds its default
    factory from it and hands that to the hook, as for the listener gunicorn knows about."""

    def __init__(self, cfg: Any, client_ca: str) -> None:
        self._cfg = cfg
        self._client_ca = client_ca

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cfg, name)

    def ssl_context(self, conf: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return tls.server_context(conf.certfile, conf.keyfile, default_ssl_context_factory, client_ca=self._client_ca)


class _App:
    """The WSGI app, told which listener a request came in on and how long it waited for a thread."""

    def __init__(self, app: Any, local: threading.local) -> None:
        self.app = app
        self._local = local

    def __getattr__(self, name: str) -> Any:  # app.extensions for gunicorn_conf.worker_exit
        return getattr(self.app, name)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            environ["netguard.listener"] = conn.listener
            environ["netguard.queue_wait"] = max(0.0, self._local.started - conn.queued_at)
            environ["netguard.authenticated"] = conn.authenticated
            environ["netguard.client_cn"] = conn.client_cn
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


class ThreadWorker(_GthreadWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    nr_conns: int  # open connections: accepted, in a request, or kept alive

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server = config.load().server
        self.limits = server
        self.worker_connections = server.max_connections
        self.max_keepalived = server.max_idle_connections
        self._check_port = _port(server.check_bind) if server.check_bind else None
        # The admission listener's TLS with client certificates (server.client_ca); None: gunicorn's, as is.
        self._client_auth_cfg = _ListenerConf(self.cfg, server.client_ca) if server.client_ca else None
        self._idle: dict[_Conn, None] = {}  # oldest first (insertion order)
        self._loop: set[_Conn] = set()  # handshake, head and linger phases
        self._local = threading.local()
        self.check_pool: futures.ThreadPoolExecutor | None = None
        self._slot: int | None = None  # this worker's row in spread.TABLE (claimed in init_process)
        self._spread_due = 0.0  # when the loop next publishes its count and reads the others'
        self._stand_back = False  # the last reading: far ahead of a live worker, so not accepting

    # -- set-up -------------------------------------------------------------------------------------

    def init_process(self) -> None:
        self._slot = spread.TABLE.claim()  # before the loop starts (super().init_process() runs it)
        if self._check_port is not None:
            self.check_pool = futures.ThreadPoolExecutor(max_workers=self.limits.check.threads,
                                                         thread_name_prefix="check")
        super().init_process()

    def _ssl_context(self, listener: str) -> ssl.SSLContext:
        """The context for a new connection: the admission listener's verifies client certificates when
        server.client_ca is set; the check listener's never asks for one."""
        cfg = self._client_auth_cfg if listener == ADMISSION and self._client_auth_cfg is not None else self.cfg
        context: ssl.SSLContext = ssl_context(cfg)
        return context

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi: Any = _App(self.wsgi, self._local)

    def _count(self, phase: str) -> None:
        """netguard_connections_cut_total{phase}: the app's metrics, when it has them."""
        with contextlib.suppress(Exception):
            self.wsgi.app.extensions["netguard.metrics"].connections_cut.labels(phase=phase).inc()

    # -- event loop: accept, handshake, idle, head --------------------------------------------------

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        now = time.monotonic()
        if now >= self._spread_due:  # the table is read at most every SPREAD_EVERY, not at every event
            self._spread_due = now + SPREAD_EVERY
            spread.TABLE.publish(self._slot, self.nr_conns, now=now)  # the heartbeat, at least every POLL_INTERVAL
            self._stand_back = self.alive and not spread.TABLE.may_accept(self._slot, self.nr_conns, now=now)
            if self.alive:  # gthread itself re-checks only at its connection limit
                self.set_accept_enabled(self.nr_conns < self.worker_connections)
        # Standing back, look again soon: the decision was made from counts up to SPREAD_EVERY old.
        super().wait_for_and_dispatch_events(min(timeout, SPREAD_EVERY if self._stand_back else POLL_INTERVAL))

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread's switch (its connection limit), and while alive also spread.py's: far ahead of a live
        worker, stand back so it takes the next connections."""
        super().set_accept_enabled(enabled and not (self.alive and self._stand_back))

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        spread.TABLE.publish(self._slot, self.nr_conns)  # at once: another worker must never read it too low
        if self.alive and not spread.TABLE.may_accept(self._slot, self.nr_conns):  # a burst: stop at once
            self._stand_back = True
            self.set_accept_enabled(False)
        server = listener.getsockname()
        kind = CHECK if self._check_port is not None and server[1] == self._check_port else ADMISSION
        conn = _Conn(self.cfg, client_sock, client_addr, server, kind)  # non-blocking
        now = time.monotonic()
        try:
            if self.cfg.is_ssl:
                conn.sock = self._ssl_context(kind).wrap_socket(
                    client_sock, server_side=True, do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
                conn.deadline = now + self.limits.handshake_timeout_seconds
                self._loop.add(conn)
            else:  # plain HTTP (not netguard's deployment): nothing to shake hands over
                self._start_parser(conn)
                self._to_idle(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, conn))
        except Exception:
            self._drop(conn)
            raise
        self._advance(conn)

    def _start_parser(self, conn: _Conn) -> None:
        conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.initialized = True

    def _on_event(self, conn: _Conn, _fileobj: Any) -> None:
        if conn.phase == LINGER:
            self._drain(conn)
        else:
            self._advance(conn)

    def _close_graceful(self, conn: _Conn) -> None:
        """RFC 9112 9.6 as gunicorn's util.close_graceful does it (FIN, then read what the client still
        sends so the kernel does not answer it with a reset that truncates our answer), but in the event
        loop: gthread lingers up to 2 s per connection on the loop itself, and four connections closed
        together stalled every accept, handshake and head for 8 s."""
        try:
            conn.sock.setblocking(False)
            socket.socket.shutdown(conn.sock, socket.SHUT_WR)  # the TCP socket: no TLS state is touched
            conn.phase, conn.deadline, conn.drained = LINGER, time.monotonic() + LINGER_SECONDS, 0
            self._loop.add(conn)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, conn))
        except Exception:
            self._drop(conn)
            return
        self._drain(conn)

    def _drain(self, conn: _Conn) -> None:
        try:
            while conn.drained < LINGER_BYTES:
                data = socket.socket.recv(conn.sock, 4096)
                if not data:
                    break
                conn.drained += len(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._drop(conn)

    def _advance(self, conn: _Conn) -> None:
        """Move the handshake or the head on with what the socket has now; never blocks."""
        want = selectors.EVENT_READ
        try:
            if conn.phase == HANDSHAKE:
                conn.sock.do_handshake()
                if conn.listener == ADMISSION and self._client_auth_cfg is not None:
                    # CERT_OPTIONAL: a certificate presented has verified (else the handshake failed); None: none.
                    peer = conn.sock.getpeercert()
                    conn.authenticated, conn.client_cn = bool(peer), tls.client_common_name(peer)
                self._start_parser(conn)
                self._to_idle(conn)
            while True:
                data = conn.sock.recv(RECV_SIZE)
                if not data:  # the client closed
                    self._drop(conn)
                    return
                if conn.phase == IDLE:
                    self._idle.pop(conn, None)
                    self._loop.add(conn)
                    conn.phase, conn.deadline = HEAD, time.monotonic() + self.limits.head_timeout_seconds
                start = max(0, len(conn.head) - 3)
                conn.head += data
                if conn.phase == BODY:
                    if self._body_done(conn):
                        return
                    continue
                end = _head_end(conn.head, start)
                if end >= 0:
                    if self._head_done(conn, end):
                        return
                    continue
                if len(conn.head) > MAX_HEAD_BYTES:
                    self._refuse(conn, _HEAD_TOO_LARGE)
                    return
        except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            want = selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            want = selectors.EVENT_WRITE
        except (ssl.SSLError, OSError, ValueError):  # a failed handshake, a reset
            self._drop(conn)
            return
        if want != conn.events:
            conn.events = want
            self.poller.modify(conn.sock, want, partial(self._on_event, conn))

    def _to_idle(self, conn: _Conn) -> None:
        """No request bytes yet: wait in the poller for the keep-alive time, among the idle."""
        self._loop.discard(conn)
        conn.phase = IDLE
        conn.deadline = time.monotonic() + self.cfg.keepalive
        if not self.alive:
            conn.deadline = min(conn.deadline, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self._idle[conn] = None

    def _head_done(self, conn: _Conn, end: int) -> bool:
        """The head is complete: read the body in the event loop too (a thread only ever gets a whole
        request, so clients that send half a body cannot hold the threads), within body_timeout_seconds.
        Returns True when the connection left the loop's reading (dispatched or refused)."""
        conn.body_start = end
        conn.framing, conn.length = _framing(bytes(conn.head[:end]))
        conn.phase, conn.deadline = BODY, time.monotonic() + self.limits.body_timeout_seconds
        return self._body_done(conn)

    def _body_done(self, conn: _Conn) -> bool:
        limit = self.limits.check.max_body_bytes if conn.listener == CHECK else self.limits.max_body_bytes
        have = len(conn.head) - conn.body_start
        if (conn.framing == "none" or conn.framing == "bad"
                or (conn.framing == "length" and (have >= conn.length or conn.length > limit))
                or (conn.framing == "chunked" and (have > limit + 64 * 1024
                                                   or _chunked_complete(conn.head, conn.body_start)))):
            self._dispatch(conn)  # too large or malformed: the thread answers 413/400 without reading more
            return True
        return False

    def _dispatch(self, conn: _Conn) -> None:
        """A complete head: off the poller, into the listener's thread pool."""
        self._loop.discard(conn)
        self.poller.unregister(conn.sock)
        conn.parser.unreader.unread(bytes(conn.head))
        conn.head = bytearray()
        conn.phase, conn.data_ready = THREAD, True
        conn.queued_at = time.monotonic()
        self.enqueue_req(conn)

    def _refuse(self, conn: _Conn, answer: bytes) -> None:
        with contextlib.suppress(Exception):
            conn.sock.send(answer)  # non-blocking, best effort
        self._drop(conn)

    def _drop(self, conn: _Conn, cut: str | None = None) -> None:
        """Close a connection the event loop holds; the count goes down exactly once."""
        self._loop.discard(conn)
        self._idle.pop(conn, None)
        with contextlib.suppress(Exception):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        with contextlib.suppress(Exception):
            conn.close()
        if cut:
            self._count(cut)

    def murder_keepalived(self, force: bool = False) -> None:
        """Every loop turn: deadlines of handshakes, heads, lingering closes and idle connections; the caps."""
        now = time.monotonic()
        for conn in [c for c in self._loop if c.deadline <= now or force]:
            if conn.phase == BODY and not force:
                self._refuse(conn, _REQUEST_TIMEOUT)  # the client is told why
                self._count(BODY)
                continue
            self._drop(conn, cut=None if conn.phase == LINGER else conn.phase)
        for conn in [c for c in self._idle if c.deadline <= now or force]:
            self._drop(conn)
        # Too many idle, or no room for a new connection: the oldest idle ones go first.
        while self._idle and (len(self._idle) > self.max_keepalived or self.nr_conns >= self.worker_connections):
            self._drop(next(iter(self._idle)), cut="idle_evicted")

    def murder_pending(self) -> None:
        """Nothing waits on gthread's pending list here: the event loop reads every request head."""

    def _cap_keepalive(self, deadline: float) -> None:
        for conn in self._idle:
            conn.deadline = min(conn.deadline, deadline)

    # -- threads ------------------------------------------------------------------------------------

    def enqueue_req(self, conn: _Conn) -> None:
        pool = self.check_pool if conn.listener == CHECK and self.check_pool is not None else self.tpool
        fs = pool.submit(self.handle, conn)
        fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    @staticmethod
    def _bound_reads(conn: _Conn, deadline: float | None) -> None:
        """Every read of this request from the socket ends by `deadline` in total, not per read: the socket
        timeout is what is left before each one (a client trickling a byte at a time runs out too). A read
        timeout leaves the TLS session usable, so the client still gets its 408."""
        unreader = conn.parser.unreader
        if deadline is None:
            unreader.__dict__.pop("chunk", None)
            return
        read = type(unreader).chunk

        def chunk(size_hint: int | None = None) -> bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("request read deadline")
            conn.sock.settimeout(left)
            data: bytes = read(unreader, size_hint)
            return data

        unreader.chunk = chunk

    def handle(self, conn: _Conn) -> Any:
        """A complete head is buffered: parse it, read the body within its deadline, run the app."""
        self._local.conn, self._local.started = conn, time.monotonic()
        self._bound_reads(conn, self._local.started + self.limits.body_timeout_seconds)
        try:
            return super().handle(conn)
        finally:
            self._bound_reads(conn, None)
            self._local.conn = None

    def handle_request(self, req: Any, conn: _Conn) -> bool:
        limit = self.limits.check.max_body_bytes if conn.listener == CHECK else self.limits.max_body_bytes
        reader = req.body.reader
        whole = isinstance(reader, ChunkedReader) or (isinstance(reader, LengthReader) and reader.length <= limit)
        if whole:
            try:
                data = req.body.read(limit + 1)
            except (OSError, NoMoreData):  # past the deadline (TimeoutError), or a reset
                self._count("body")
                with contextlib.suppress(Exception):
                    util.write(conn.sock, _REQUEST_TIMEOUT)
                return False
            body = Body(io.BytesIO(data))
            # A chunked body longer than the limit is not all read: the connection cannot be reused.
            body.failed = isinstance(reader, ChunkedReader) and len(data) > limit
            req.body = body
        elif not isinstance(reader, LengthReader):
            req.body = Body(io.BytesIO(b""))  # neither length nor chunked: a request has no body (RFC 9112 6.3)
        # No blocking socket call without a limit: reads ended by the body deadline (_bound_reads), and a
        # client that does not read its answer cannot hold a write longer than this either.
        self._bound_reads(conn, None)
        conn.sock.settimeout(self.limits.body_timeout_seconds)
        return bool(super().handle_request(req, conn))

    def finish_request(self, conn: _Conn, fs: Any) -> None:
        """Back on the event loop: keep-alive connections wait idle (or read their next head) in the poller."""
        try:
            keep = fs.result() if not fs.cancelled() else False
        except Exception:
            keep = False
        if keep and conn.parser is not None:
            try:
                conn.sock.setblocking(False)
                conn.head = bytearray(conn.parser.unreader.take_buffered())  # a pipelined next request
                conn.events = selectors.EVENT_READ
                self._to_idle(conn)
                self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_event, conn))
            except Exception:
                self._drop(conn)
                return
            if conn.head:
                self._idle.pop(conn, None)
                self._loop.add(conn)
                conn.phase, conn.deadline = HEAD, time.monotonic() + self.limits.head_timeout_seconds
                end = _head_end(conn.head, 0)
                if end >= 0 and self._head_done(conn, end):
                    return
            self._advance(conn)  # TLS may hold decrypted bytes the poller cannot see
            return
        self._close_graceful(conn)

    def run(self) -> None:
        try:
            super().run()
        finally:
            spread.TABLE.release(self._slot)
            if self.check_pool is not None:
                self.check_pool.shutdown(wait=False)
