"""The downloader: one bounded HTTP fetch with requests (the only module that imports it).

Every fetch attempt has a total deadline that holds whatever the server does
(name resolution, connect, a trickled status line, headers or body, redirect
hops: see deadline.py), a cap on the decompressed body (gzip, deflate, br,
zstd), a redirect limit with a scope check per hop (or no following at all,
for a scheduler that checks each target itself), and retries with backoff
that honour Retry-After. URLs go on the wire as linked, made safe by
w3lib's safe_url_string, as Scrapy sends them.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import errors
from .deadline import Deadline, WatchedHTTPConnection, WatchedHTTPSConnection
from .urls import is_http_url, location_as_sent, wire_url

_INCOMPLETE_READ = re.compile(r"IncompleteRead\([^)]*\)")

MAX_REDIRECTS = 10
READ_CHUNK = 64 * 1024
BACKOFF_BASE = 0.5  # seconds; attempt n waits BACKOFF_BASE * 2**n plus jitter
BACKOFF_CAP = 10.0
# A longer Retry-After is cut to this: the fetch thread would sit idle for longer.
MAX_RETRY_AFTER = 60.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
log = logging.getLogger(__name__)

CONNECT_TIMEOUT = f"{errors.TIMEOUT}: connect"
# A host name that does not resolve is not retried: it will not resolve a second
# later either (as curl --retry and wget do not retry "could not resolve host").
UNRESOLVED = "cannot resolve host name"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524})


@dataclass(frozen=True)
class Limits:
    timeout: float
    max_bytes: int
    retries: int
    max_redirects: int = MAX_REDIRECTS  # 0: do not follow; return the 3xx with Download.redirect_to set
    cut_at_max: bool = False  # a longer body is cut at max_bytes (no error) instead of too_large
    retry_statuses: frozenset[int] = RETRY_STATUSES  # statuses this fetch retries itself


@dataclass
class Download:
    """The outcome of one fetch: a body, or an error kind with what was known."""

    url: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None  # the raw header
    body: bytes = b""
    error: str | None = None
    elapsed_ms: float = 0.0
    retry_after: float | None = None  # seconds, from the last response
    redirect_to: str | None = None  # with max_redirects=0: the redirect's target, safe for the wire
    cut: bool = False  # with cut_at_max: the body was longer than max_bytes and is cut there


class _Abort(Exception):
    """Ends a fetch early with an error kind."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def new_session(user_agent: str) -> requests.Session:
    """A Session for one fetch loop: connection reuse, our User-Agent, no own retries.

    Proxies (HTTP(S)_PROXY, NO_PROXY) and CA bundles come from the environment,
    as with requests, wget and Scrapy.
    """
    session = _Session()
    session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
    # requests' default Accept-Encoding names br and zstd when brotli and
    # backports.zstd (our dependencies) are importable: urllib3 decodes them.
    session.mount("https://", _Adapter())
    session.mount("http://", _Adapter())
    return session


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """Connections whose sockets the fetch's deadline can shut down (deadline.py)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS keeps its own connections
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _Session(requests.Session):
    """A Session that reads proxy and CA settings from the environment once per
    origin instead of on every request (requests scans all of os.environ each time)."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple, dict[str, Any]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # noqa: ANN001, ANN201
        if proxies:  # explicit per-request proxies: nothing to cache
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        settings = self._environment.get(key)
        if settings is None:
            settings = self._environment[key] = super().merge_environment_settings(
                url, proxies, stream, verify, cert
            )
        return {**settings, "proxies": dict(settings["proxies"])}

    def get_redirect_target(self, resp: requests.Response) -> None:
        # fetch_once follows redirects itself; requests would still read the
        # Location of each one, and fail on bytes that are not UTF-8.
        return None


def download(
    session: requests.Session,
    url: str,
    limits: Limits,
    in_scope: Callable[[str], bool] = lambda url: True,
    sleep: Callable[[float], None] = time.sleep,
) -> Download:
    """Fetch `url` (as it goes on the wire), retrying connection errors,
    connect timeouts and `limits.retry_statuses`."""
    started = time.perf_counter()
    attempt = 0
    while True:
        result = fetch_once(session, url, limits, in_scope)
        wait = retry_delay(result, attempt, limits.retries, limits.retry_statuses)
        if wait is None:
            break
        log.info("%s: %s; retry %d of %d in %.1f s", url, result.error or f"status {result.status}",
                 attempt + 1, limits.retries, wait)  # fmt: skip
        sleep(wait)
        attempt += 1
    result.elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    return result


def retry_delay(
    result: Download, attempt: int, retries: int, statuses: frozenset[int] = RETRY_STATUSES
) -> float | None:
    """Seconds to wait before the next attempt, or None when not to retry.

    A Retry-After is obeyed up to MAX_RETRY_AFTER; a longer one is cut to it.
    """
    if attempt >= retries or not is_retryable(result, statuses):
        return None
    if result.retry_after is not None:
        return min(max(result.retry_after, 0.0), MAX_RETRY_AFTER)
    return min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) + random.uniform(0, BACKOFF_BASE)


def is_retryable(result: Download, statuses: frozenset[int] = RETRY_STATUSES) -> bool:
    """Connection errors, connect timeouts, and the given statuses.

    A server that accepted the connection and then hung or trickled has
    already cost the whole deadline: it is not retried, so that one page
    costs about `timeout` seconds, not (retries + 1) times that.
    """
    if result.status is not None and result.error and result.error.startswith("http_"):
        return result.status in statuses
    if result.error and result.error.startswith(f"{errors.CONNECTION}: {UNRESOLVED}"):
        return False
    return result.error == CONNECT_TIMEOUT or errors.error_kind(result.error) == errors.CONNECTION


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def fetch_once(
    session: requests.Session, url: str, limits: Limits, in_scope: Callable[[str], bool]
) -> Download:
    """One attempt, redirects included, within one deadline."""
    result = Download(url=url)
    with Deadline(limits.timeout) as deadline:
        try:
            _follow(session, result, limits, in_scope, deadline)
        except _Abort as abort:
            result.error = abort.error
        except Exception as exc:  # every failure becomes an error kind, never a crash
            result.error = classify(exc)
        if result.error is not None and deadline.expired():
            result.error = f"{errors.TIMEOUT}: {deadline.phase}"  # cut by the deadline, whatever broke
        if result.error is not None:
            result.body = b""
    return result


def _follow(
    session: requests.Session,
    result: Download,
    limits: Limits,
    in_scope: Callable[[str], bool],
    deadline: Deadline,
) -> None:
    current = result.url
    for _hop in range(limits.max_redirects + 1):
        response = _get(session, current, deadline)
        try:
            if deadline.expired():  # headers cut short by the deadline parse as if complete
                raise _Abort(f"{errors.TIMEOUT}: headers")
            _take_headers(result, response, current)
            target = _redirect_target(response, current)
            if target is None or limits.max_redirects == 0:
                result.redirect_to = target
                _finish(result, response, limits, deadline)
                return
        finally:
            response.close()  # after release_conn a no-op; otherwise drops the connection
        if not in_scope(target):
            raise _Abort(errors.describe(errors.OFFSITE_REDIRECT, target))
        current = target
    raise _Abort(errors.TOO_MANY_REDIRECTS)


def _finish(result: Download, response: requests.Response, limits: Limits, deadline: Deadline) -> None:
    """Read the body of the last response, and put the connection back in the
    pool when it was read to its end in time (else response.close() drops it)."""
    if result.error is None and result.redirect_to is None:
        deadline.phase = "body"
        _take_body(result, response, limits)
        reusable = not result.cut
        if deadline.disarm():
            raise _Abort(f"{errors.TIMEOUT}: body")
    else:  # an error status, or a redirect handed back: its body only stands in the way
        reusable = _drain(response)
        deadline.disarm()
    if reusable and not deadline.fired:
        response.raw.release_conn()


def _drain(response: requests.Response) -> bool:
    """Read a short body that is not needed, so that the connection can be
    reused; False when it is long, unsized or cut (the outcome stays as it is)."""
    declared = response.headers.get("Content-Length", "")
    if not declared.isdigit() or int(declared) > READ_CHUNK:
        return False
    try:
        response.raw.read(decode_content=False)
    except Exception:
        return False
    return True


def _get(session: requests.Session, url: str, deadline: Deadline) -> requests.Response:
    deadline.phase = "headers"
    remaining = deadline.remaining()
    if remaining <= 0:
        raise _Abort(f"{errors.TIMEOUT}: redirect")
    return session.get(url, stream=True, allow_redirects=False, timeout=(remaining, remaining))


def _take_headers(result: Download, response: requests.Response, url: str) -> None:
    result.final_url = url
    result.status = response.status_code
    result.content_type = response.headers.get("Content-Type")
    result.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if not 200 <= response.status_code < 300 and not _is_redirect(response):
        result.error = errors.http_error(response.status_code)


def _is_redirect(response: requests.Response) -> bool:
    return response.status_code in REDIRECT_STATUSES and bool(response.headers.get("Location"))


def _redirect_target(response: requests.Response, url: str) -> str | None:
    """The absolute target as it goes on the wire (percent-encoded where it
    must be, not canonicalized), or None when this is no redirect."""
    if not _is_redirect(response):
        return None
    location = location_as_sent(response.headers["Location"])
    target = urljoin(url, location)
    if not is_http_url(target):
        raise _Abort(errors.describe(errors.INVALID_URL, f"redirect to {location!r}"))
    return wire_url(target)


def _take_body(result: Download, response: requests.Response, limits: Limits) -> None:
    """Read the decompressed body within max_bytes (or cut it there, with cut_at_max)."""
    max_bytes = limits.max_bytes
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    if declared.isdigit() and int(declared) > max_bytes and not encoded and not limits.cut_at_max:
        raise _Abort(f"{errors.TOO_LARGE}: Content-Length {declared}")
    raw = response.raw
    chunks, size = [], 0
    while True:
        # read1: at most one socket read, so decompression is bounded per call;
        # a trickling server is cut by the deadline's watchdog.
        chunk = raw.read1(READ_CHUNK, decode_content=True)
        if not chunk:
            break
        if size + len(chunk) > max_bytes:
            if not limits.cut_at_max:
                raise _Abort(f"{errors.TOO_LARGE}: more than {max_bytes} bytes")
            chunks.append(chunk[: max_bytes - size])
            result.cut = True
            break
        size += len(chunk)
        chunks.append(chunk)
    result.body = b"".join(chunks)


def classify(exc: BaseException) -> str:
    """The error kind (and detail) of an exception raised while fetching."""
    unresolved = _unresolved_host(exc)
    if unresolved is not None:
        return errors.describe(errors.CONNECTION, unresolved)
    refused = _refused(exc)
    if refused is not None:
        return errors.describe(errors.CONNECTION, refused)
    detail = _short(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return CONNECT_TIMEOUT
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, socket.timeout)):
        return errors.TIMEOUT
    incomplete = _INCOMPLETE_READ.search(repr(exc))
    if incomplete:
        return f"{errors.TRUNCATED}: {incomplete.group(0)}"
    if isinstance(exc, (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError)):
        return errors.describe("decoding", detail)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema, ValueError)):
        return errors.describe(errors.INVALID_URL, detail)  # also a bad port or IPv6 in a redirect
    if isinstance(exc, (requests.ConnectionError, urllib3.exceptions.HTTPError, OSError)):
        return errors.describe(errors.CONNECTION, detail)
    return errors.describe(errors.INTERNAL, detail)


def _unresolved_host(exc: BaseException) -> str | None:
    """`cannot resolve host name 'x' (reason)` when name resolution failed, else None."""
    for cause in _causes(exc):
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            reason = getattr(cause, "_reason", None)
            why = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
            return f"{UNRESOLVED} {getattr(cause, '_host', '?')!r} ({why})"
    return None


def _refused(exc: BaseException) -> str | None:
    """`host:port: Connection refused` (or another reason a connection was not made)."""
    for cause in _causes(exc):
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            reason = next((c for c in _causes(cause) if isinstance(c, OSError) and c.strerror), None)
            conn = getattr(cause, "conn", None)
            if reason is not None and conn is not None:
                return f"{conn.host}:{conn.port}: {reason.strerror}"
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: requests and urllib3 nest the real error in
    `args[0]` or `reason` (MaxRetryError), Python in `__cause__`/`__context__`."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 20:
        cause = todo.pop()
        if any(cause is seen for seen in found):
            continue
        found.append(cause)
        nested = [getattr(cause, "reason", None), cause.__cause__, cause.__context__, *cause.args[:1]]
        todo.extend(item for item in nested if isinstance(item, BaseException))
    return found


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"
