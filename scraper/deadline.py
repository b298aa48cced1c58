"""A total deadline for one fetch, whatever the server does: one watchdog thread per process.

A fetch enters `with Deadline(seconds) as deadline:`; the urllib3 connections
below register their sockets with the deadline of their thread, when they
connect and again whenever a kept-alive connection sends a new request. At
the deadline the watchdog shuts those sockets down, so a read that a server
keeps alive by trickling bytes (status line, headers, body: a socket timeout
restarts with each byte) returns at once, and the fetch sees
`deadline.expired()`. A TLS handshake needs no watching: CPython bounds all of
it by the socket timeout, cut here to the time left. Name resolution, which
no timeout bounds, runs in a helper thread waited on for the time left; IP
literals and names resolved in the last minute need no thread.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import sys
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

RESOLVED_TTL = 60.0  # seconds a resolved name is reused without asking again
MAX_RESOLVED = 10_000
_local = threading.local()


class Deadline:
    """The deadline of one fetch attempt; `phase` says what it was doing (for the error detail)."""

    __slots__ = ("at", "phase", "fired", "_armed", "_sockets", "_previous")

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.phase = "connect"
        self.fired = False
        self._armed = False
        self._sockets: list[socket.socket] = []
        self._previous: Deadline | None = None

    def __enter__(self) -> Deadline:
        _watchdog.arm(self)
        self._previous = getattr(_local, "deadline", None)
        _local.deadline = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        _local.deadline = self._previous
        self.disarm()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.fired or time.monotonic() >= self.at

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down at the deadline (at once if it has passed)."""
        _watchdog.watch(self, sock)

    def disarm(self) -> bool:
        """Stop watching (idempotent); True when the deadline has passed.

        Once this returns, the watchdog no longer touches this fetch's sockets,
        so a connection may go back to the pool when it returned False.
        """
        _watchdog.disarm(self)
        return self.expired()


def current() -> Deadline | None:
    """The deadline of the fetch running in this thread, if any."""
    return getattr(_local, "deadline", None)


class _Watchdog:
    """A heap of armed deadlines; disarmed ones are dropped lazily (and compacted in bulk)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._stale = 0  # disarmed deadlines still in the heap
        self._thread: threading.Thread | None = None

    def arm(self, deadline: Deadline) -> None:
        with self._cond:
            deadline._armed = True
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadline-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()  # earlier than what the watchdog sleeps for

    def watch(self, deadline: Deadline, sock: socket.socket) -> None:
        with self._cond:
            if deadline._armed:
                deadline._sockets.append(sock)
                if deadline.fired:
                    _shutdown(sock)

    def disarm(self, deadline: Deadline) -> None:
        with self._cond:
            if not deadline._armed:
                return
            deadline._armed = False
            deadline._sockets = []
            if not deadline.fired:  # a fired one has left the heap already
                self._stale += 1
                if self._stale > 256 and 2 * self._stale > len(self._heap):
                    self._heap = [entry for entry in self._heap if entry[2]._armed]
                    heapq.heapify(self._heap)
                    self._stale = 0

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (not self._heap[0][2]._armed or self._heap[0][0] <= now):
                    _, _, deadline = heapq.heappop(self._heap)
                    if deadline._armed:
                        deadline.fired = True
                        for sock in deadline._sockets:
                            _shutdown(sock)
                    else:
                        self._stale -= 1
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _shutdown(sock: socket.socket) -> None:
    """Make every blocked and later read or write on `sock` return at once."""
    # The plain socket's shutdown, also for an SSLSocket: its own would change
    # TLS state that the fetch thread is using. OSError: not connected, or closed.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_watchdog = _Watchdog()


def _new_watchdog_in_child() -> None:
    global _watchdog
    _watchdog = _Watchdog()  # the parent's thread and lock state do not survive a fork


os.register_at_fork(after_in_child=_new_watchdog_in_child)


# -- name resolution and connect ----------------------------------------------------

_resolved: dict[tuple[str, int, int], tuple[float, list[Any]]] = {}


def resolve(host: str, port: int, family: int, timeout: float | None) -> list[Any]:
    """getaddrinfo for a TCP connection, given up (socket.timeout) after `timeout` seconds."""
    if _is_ip_literal(host):
        return socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    key = (host, port, family)
    cached = _resolved.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    answer = _in_helper_thread(timeout, host, port, family, socket.SOCK_STREAM)
    if len(_resolved) >= MAX_RESOLVED:
        _resolved.clear()
    _resolved[key] = (time.monotonic() + RESOLVED_TTL, answer)
    return answer


def _is_ip_literal(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            pass
    return False


def _in_helper_thread(timeout: float | None, *args: Any) -> list[Any]:
    """getaddrinfo has no timeout: run it in a thread and stop waiting in time
    (the thread finishes on its own; a daemon, it never holds up an exit)."""
    outcome: list[Any] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(socket.getaddrinfo(*args))
        except Exception as exc:
            outcome.append(exc)
        done.set()

    threading.Thread(target=run, name="resolve", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"name resolution took more than {timeout:.1f} s")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def open_connection(
    address: tuple[str, int],
    timeout: Any,
    source_address: tuple[str, int] | None = None,
    socket_options: Any = None,
) -> socket.socket:
    """urllib3.util.connection.create_connection with a bounded name resolution,
    each socket watched by this thread's deadline before it connects."""
    host, port = address
    host = host.strip("[]") if host.startswith("[") else host
    deadline = current()
    if deadline is not None:
        deadline.phase = "resolve"
    error: OSError | None = None
    for family, kind, proto, _name, addr in resolve(host, port, allowed_gai_family(), _time_left(timeout)):
        if deadline is not None:
            deadline.phase = "connect"
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(_time_left(timeout))
            if source_address:
                sock.bind(source_address)
            if deadline is not None:
                deadline.watch(sock)
            sock.connect(addr)
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    raise error or OSError("getaddrinfo returned an empty list")


def _time_left(timeout: Any) -> float | None:
    """The connect timeout, cut to what is left of this thread's deadline."""
    limit = float(timeout) if isinstance(timeout, (int, float)) else None
    deadline = current()
    if deadline is not None:
        left = deadline.remaining()
        if left <= 0:
            raise TimeoutError("deadline passed")
        limit = left if limit is None else min(limit, left)
    return limit


class WatchedHTTPConnection(HTTPConnection):
    """An HTTPConnection whose socket this thread's deadline can shut down."""

    def _new_conn(self) -> socket.socket:
        # urllib3's own _new_conn with open_connection in place of create_connection.
        try:
            sock = open_connection(
                (self._dns_host, self.port), self.timeout, self.source_address, self.socket_options
            )
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)
        self._set_phase("headers")
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline = current()
        if deadline is not None:
            if self.sock is not None:  # a kept-alive connection: new connections watch their own
                deadline.watch(self.sock)
            deadline.phase = "headers"
        super().request(*args, **kwargs)

    @staticmethod
    def _set_phase(phase: str) -> None:
        deadline = current()
        if deadline is not None:
            deadline.phase = phase


class WatchedHTTPSConnection(WatchedHTTPConnection, HTTPSConnection):
    """The same for TLS. The handshake needs no watching: CPython bounds the
    whole of it by the socket's timeout, which is cut to the time left."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self._set_phase("tls")
        return sock

    def connect(self) -> None:
        super().connect()
        self._set_phase("headers")
