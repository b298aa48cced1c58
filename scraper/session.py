"""The requests Session of one fetch loop, as the downloader needs it.

Our User-Agent and -H headers on every request; the credential headers and
--auth only for the seeds' origins (PrivateHeaders, decided per request, as
the downloader follows redirects itself); --cookie cookies under RFC 6265's
host-only rule; and connections whose sockets the fetch's deadline can shut
down (deadline.py), through proxies too.
"""

from __future__ import annotations

import base64
import http.cookiejar
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .deadline import WatchedHTTPConnection, WatchedHTTPSConnection, current
from .urls import origin_of

log = logging.getLogger("scraper")

# Headers that carry credentials: given with -H, they go where --auth goes (the
# seeds' origins), as curl keeps them from another host on a redirect.
PRIVATE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class _UnparsedHeaders(logging.Filter):
    """urllib3 logs a response head it cannot parse as a warning with a whole
    traceback, and goes on. A deadline that cuts the headers short is one cause:
    the record says `timeout: headers` and -v has its line already, so nothing
    more is said. Otherwise it is one -v line (the page itself may be fine)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Failed to parse headers"):
            return True
        deadline = current()
        if deadline is None or not deadline.expired():
            args = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "")
            log.info("%s: response headers not fully parsed: %s", *args)
        return False


logging.getLogger("urllib3.connection").addFilter(_UnparsedHeaders())


def new_session(
    user_agent: str,
    headers: Iterable[tuple[str, str]] = (),
    cookies: Iterable[tuple[str, str, str, str, bool]] = (),
    auth: str | None = None,
    private_origins: Iterable[str] = (),
) -> requests.Session:
    """A Session for one fetch loop: connection reuse, our User-Agent, no own retries.

    Proxies (HTTP(S)_PROXY, NO_PROXY) and CA bundles come from the environment,
    as with requests, wget and Scrapy. `headers` (-H) go on every request but
    the credential ones; those and `auth` ("user:password", HTTP Basic) go to
    `private_origins` only. `cookies` are (domain, path, name, value, secure).
    """
    session = _Session()
    session.headers["User-Agent"] = user_agent
    session.headers["Accept"] = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
    # requests' default Accept-Encoding names br and zstd when brotli and
    # backports.zstd (our dependencies) are importable: urllib3 decodes them.
    session.mount("https://", _Adapter())
    session.mount("http://", _Adapter())
    private = _add_headers(session, headers)
    if auth is not None:
        private["Authorization"] = basic_authorization(auth)
    if private:  # also keeps requests from reading ~/.netrc for these requests
        session.auth = PrivateHeaders(private, frozenset(private_origins))
    _add_cookies(session, cookies)
    return session


def _add_headers(session: requests.Session, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Put the -H headers on the session; the credential ones are returned instead."""
    private = {}
    for name, value in headers:
        if name.lower() in PRIVATE_HEADERS:
            private[name] = value
        else:
            session.headers[name] = value
    return private


def _add_cookies(session: requests.Session, cookies: Iterable[tuple[str, str, str, str, bool]]) -> None:
    # Host-only cookies (no leading dot) go to that host alone, not to its
    # subdomains (RFC 6265 5.3); cookies set by servers are kept as before.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(
        strict_ns_domain=http.cookiejar.DefaultCookiePolicy.DomainStrictNonDomain))  # fmt: skip
    for domain, path, name, value, secure in cookies:
        dotted = domain.startswith(".")
        session.cookies.set_cookie(http.cookiejar.Cookie(
            0, name, value, None, False, domain, dotted, dotted, path, True, secure,
            None, True, None, None, {},
        ))  # fmt: skip


def basic_authorization(credentials: str) -> str:
    """The Authorization header of "user:password" (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


class PrivateHeaders(requests.auth.AuthBase):
    """Credentials for some origins only, decided per request. The downloader
    follows redirects itself (and the scheduler hands page redirects out as new
    tasks), so requests' own stripping of Authorization on a redirect to
    another host never runs: every hop is a request of its own and is checked
    here (Scrapy ties credentials to http_auth_domain for the same reason)."""

    def __init__(self, headers: dict[str, str], origins: frozenset[str]) -> None:
        self.headers = headers
        self.origins = origins

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.url and origin_of(request.url) in self.origins:
            request.headers.update(self.headers)
        return request

    def __repr__(self) -> str:  # never the credentials
        return f"PrivateHeaders({sorted(self.headers)} for {sorted(self.origins)})"


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

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        # requests copies the cookies into a jar of the default policy, which
        # sends a host-only cookie to every subdomain too: the header is made
        # again from the session's own jar (_add_cookies' policy), then the
        # credential headers for the seeds' origins go on as before.
        if len(self.cookies):  # most crawls have none: nothing to build again
            prepared.headers.pop("Cookie", None)
            prepared.prepare_cookies(self.cookies)
        if self.auth is not None:
            prepared.prepare_auth(self.auth)
        return prepared

    def get_redirect_target(self, resp: requests.Response) -> None:
        # download.fetch_once follows redirects itself; requests would still read the
        # Location of each one, and fail on bytes that are not UTF-8.
        return None
