"""The downloader: one bounded HTTP fetch over a requests Session (session.py).

Every fetch attempt has a total deadline that holds whatever the server does
(name resolution, connect, a trickled status line, headers or body, redirect
hops: see deadline.py), a cap on the decompressed body (gzip, deflate, br,
zstd), a redirect limit with a scope check per hop (or no following at all,
for a scheduler that checks each target itself), and retries with backoff
that honour Retry-After. URLs go on the wire as linked, made safe by
w3lib's safe_url_string, as Scrapy sends them.

For --warc (Limits.archive) each request and response is kept as an
Exchange: the body as received (still content-encoded, as wget archives it;
urllib3 has already undone any chunked transfer coding), then decoded from
those bytes with urllib3's own decoders, within the same bounds.
"""

from __future__ import annotations

import io
import logging
import random
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from . import errors
from .deadline import Deadline
from .failures import CONNECT_TIMEOUT, UNRESOLVED, classify
from .urls import is_http_url, location_as_sent, wire_url

MAX_REDIRECTS = 10
READ_CHUNK = 64 * 1024
BACKOFF_BASE = 0.5  # seconds; attempt n waits BACKOFF_BASE * 2**n plus jitter
BACKOFF_CAP = 10.0
# A longer Retry-After is cut to this: the fetch thread would sit idle for longer.
MAX_RETRY_AFTER = 60.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    timeout: float
    max_bytes: int
    retries: int
    max_redirects: int = MAX_REDIRECTS  # 0: do not follow; return the 3xx with Download.redirect_to set
    cut_at_max: bool = False  # a longer body is cut at max_bytes (no error) instead of too_large
    retry_statuses: frozenset[int] = RETRY_STATUSES  # statuses this fetch retries itself
    archive: bool = False  # keep every request and response as received (Download.exchanges)


@dataclass
class Exchange:
    """One request and its response as they went over the wire (for --warc)."""

    url: str
    sent_at: float  # time.time() when the request was sent
    request_headers: list[tuple[str, str]]
    protocol: str  # of the response: "HTTP/1.1"
    status_line: str  # "200 OK"
    response_headers: list[tuple[str, str]]
    body: bytes = b""  # as received: content-encoded, not chunked
    truncated: bool = False  # the body was not read to its end (--max-bytes, a body not needed)


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
    etag: str | None = None  # validators of the last response
    last_modified: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)  # with Limits.archive: every hop


class _Abort(Exception):
    """Ends a fetch early with an error kind."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def download(
    session: requests.Session,
    url: str,
    limits: Limits,
    in_scope: Callable[[str], bool] = lambda url: True,
    sleep: Callable[[float], None] = time.sleep,
    headers: Mapping[str, str] | None = None,
) -> Download:
    """Fetch `url` (as it goes on the wire), retrying connection errors,
    connect timeouts and `limits.retry_statuses`. `headers` are added to the
    request (--since: If-None-Match, If-Modified-Since)."""
    started = time.perf_counter()
    attempt = 0
    exchanges: list[Exchange] = []  # of every attempt: all went over the wire
    while True:
        result = fetch_once(session, url, limits, in_scope, headers)
        exchanges += result.exchanges
        wait = retry_delay(result, attempt, limits.retries, limits.retry_statuses)
        if wait is None:
            break
        log.info("%s: %s; retry %d of %d in %.1f s", url, result.error or f"status {result.status}",
                 attempt + 1, limits.retries, wait)  # fmt: skip
        sleep(wait)
        attempt += 1
    result.exchanges = exchanges
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
    # A host name that does not resolve is not retried: it will not resolve a second
    # later either (as curl --retry and wget do not retry "could not resolve host").
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
    session: requests.Session,
    url: str,
    limits: Limits,
    in_scope: Callable[[str], bool],
    headers: Mapping[str, str] | None = None,
) -> Download:
    """One attempt, redirects included, within one deadline."""
    result = Download(url=url)
    with Deadline(limits.timeout) as deadline:
        try:
            _follow(session, result, limits, in_scope, deadline, headers)
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
    headers: Mapping[str, str] | None = None,
) -> None:
    current = result.url
    for _hop in range(limits.max_redirects + 1):
        sent_at = time.time()
        response = _get(session, current, deadline, headers)
        try:
            if deadline.expired():  # headers cut short by the deadline parse as if complete
                raise _Abort(f"{errors.TIMEOUT}: headers")
            exchange = _exchange(response, current, sent_at) if limits.archive else None
            if exchange is not None:
                result.exchanges.append(exchange)
            _take_headers(result, response, current)
            target = _redirect_target(response, current)
            if target is None or limits.max_redirects == 0:
                result.redirect_to = target
                _finish(result, response, limits, deadline, exchange)
                return
            if exchange is not None:
                _drain(response, exchange)
        finally:
            response.close()  # after release_conn a no-op; otherwise drops the connection
        if not in_scope(target):
            raise _Abort(errors.describe(errors.OFFSITE_REDIRECT, target))
        current = target
    raise _Abort(errors.TOO_MANY_REDIRECTS)


def _finish(
    result: Download,
    response: requests.Response,
    limits: Limits,
    deadline: Deadline,
    exchange: Exchange | None = None,
) -> None:
    """Read the body of the last response, and put the connection back in the
    pool when it was read to its end in time (else response.close() drops it)."""
    if result.error is None and result.redirect_to is None:
        deadline.phase = "body"
        _take_body(result, response, limits, exchange)
        reusable = not result.cut
        if deadline.disarm():
            raise _Abort(f"{errors.TIMEOUT}: body")
    else:  # an error status, or a redirect handed back: its body only stands in the way
        reusable = _drain(response, exchange)
        deadline.disarm()
    if reusable and not deadline.fired:
        response.raw.release_conn()


def _drain(response: requests.Response, exchange: Exchange | None = None) -> bool:
    """Read a short body that is not needed, so that the connection can be
    reused; False when it is long, unsized or cut (the outcome stays as it is).
    The archive gets what was read; a body left unread is marked truncated."""
    declared = response.headers.get("Content-Length", "")
    if exchange is not None:
        exchange.truncated = declared != "0"
    if not declared.isdigit() or int(declared) > READ_CHUNK:
        return False
    try:
        body = response.raw.read(decode_content=False)
    except Exception:
        return False
    if exchange is not None:
        exchange.body, exchange.truncated = body, False
    return True


def _get(
    session: requests.Session, url: str, deadline: Deadline, headers: Mapping[str, str] | None = None
) -> requests.Response:
    deadline.phase = "headers"
    remaining = deadline.remaining()
    if remaining <= 0:
        raise _Abort(f"{errors.TIMEOUT}: redirect")
    return session.get(url, headers=headers, stream=True, allow_redirects=False,
                       timeout=(remaining, remaining))  # fmt: skip


def _exchange(response: requests.Response, url: str, sent_at: float) -> Exchange:
    """The request as sent and the response's head as received (urllib3 keeps
    repeated headers apart; the Host header is added by http.client)."""
    sent = [(name, _text(value)) for name, value in response.request.headers.items()]
    if not any(name.lower() == "host" for name, _ in sent):
        sent.insert(0, ("Host", urlsplit(url).netloc))
    version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(response.raw.version, "HTTP/1.1")
    return Exchange(
        url=url, sent_at=sent_at, request_headers=sent, protocol=version,
        status_line=f"{response.status_code} {response.reason or ''}".rstrip(),
        response_headers=list(response.raw.headers.items()),
    )  # fmt: skip


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _take_headers(result: Download, response: requests.Response, url: str) -> None:
    result.final_url = url
    result.status = response.status_code
    result.content_type = response.headers.get("Content-Type")
    result.retry_after = parse_retry_after(response.headers.get("Retry-After"))
    result.etag = response.headers.get("ETag")
    result.last_modified = response.headers.get("Last-Modified")
    if not 200 <= response.status_code < 300 and not _is_redirect(response) and not _not_modified(response):
        result.error = errors.http_error(response.status_code)


def _not_modified(response: requests.Response) -> bool:
    """A 304 that answers a conditional request (--since): not an error."""
    sent = response.request.headers
    return response.status_code == 304 and ("If-None-Match" in sent or "If-Modified-Since" in sent)


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


def _take_body(
    result: Download, response: requests.Response, limits: Limits, exchange: Exchange | None = None
) -> None:
    """Read the decompressed body within max_bytes (or cut it there, with cut_at_max)."""
    max_bytes = limits.max_bytes
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
    if declared.isdigit() and int(declared) > max_bytes and not encoded and not limits.cut_at_max:
        if exchange is not None:
            exchange.truncated = True
        raise _Abort(f"{errors.TOO_LARGE}: Content-Length {declared}")
    raw = response.raw
    if exchange is not None:
        raw = _as_received(response, limits, exchange)
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


def _as_received(response: requests.Response, limits: Limits, exchange: Exchange) -> urllib3.HTTPResponse:
    """Read the body as received into the exchange (within max_bytes: a
    compressed body is never longer than its decoded form but for a bomb's
    wrapper), and return a response that decodes those bytes as urllib3 does."""
    chunks, size = [], 0
    while size <= limits.max_bytes:
        chunk = response.raw.read1(READ_CHUNK, decode_content=False)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    exchange.body = b"".join(chunks)[: limits.max_bytes]
    exchange.truncated = size > limits.max_bytes
    if exchange.truncated and not limits.cut_at_max:
        raise _Abort(f"{errors.TOO_LARGE}: more than {limits.max_bytes} bytes")
    encoding = response.headers.get("Content-Encoding", "identity")
    return urllib3.HTTPResponse(body=io.BytesIO(exchange.body), headers={"Content-Encoding": encoding},
                                preload_content=False, decode_content=True)  # fmt: skip


GZIP_MAGIC = b"\x1f\x8b"


def gunzip(data: bytes, max_bytes: int) -> tuple[bytes, str | None]:
    """A gzip body (a .xml.gz sitemap: application/gzip, not a Content-Encoding,
    so urllib3 leaves it alone: scrapy/scrapy#2389) decompressed into at most
    `max_bytes`; (b"", error) past that or when it is corrupt. Memory stays
    flat on a bomb: the output is made READ_CHUNK at a time and stops at the cap."""
    inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
    chunks, size, pending = [], 0, data
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, READ_CHUNK)
            pending = inflater.unconsumed_tail
            size += len(chunk)
            if size > max_bytes:
                return b"", f"{errors.TOO_LARGE}: more than {max_bytes} bytes after gunzip"
            chunks.append(chunk)
            if not pending and len(chunk) < READ_CHUNK:
                break  # all input used and nothing more to come out
    except zlib.error as exc:
        return b"", errors.describe("decoding", f"gzip: {exc}")
    return b"".join(chunks), None
