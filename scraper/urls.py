"""Pure URL helpers: canonical form, scheme checks, host keys and scope."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

HTTP_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonicalize(url: str) -> str:
    """The form Scrapy de-duplicates on, without the default port.

    w3lib lower-cases scheme and host, sorts the query, normalizes
    percent-encoding and drops the fragment; it keeps `:80`, so we drop it.
    Raises ValueError for a URL that cannot be parsed (bad port, bad IPv6).
    """
    canonical = canonicalize_url(url.strip())
    parts = urlsplit(canonical)
    if parts.port is not None and _DEFAULT_PORTS.get(parts.scheme) == parts.port:
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}" if userinfo else host
        canonical = urlunsplit(parts._replace(netloc=netloc))
    return canonical


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme.lower() in HTTP_SCHEMES and bool(parts.hostname)
    except ValueError:
        return False


def host_of(url: str) -> str:
    """Lower-case host name without port: the key of per-host politeness."""
    return (urlsplit(url).hostname or "").lower()


def robots_url(url: str) -> str:
    """The robots.txt URL of the scheme, host and port of `url`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))


def origin_of(url: str) -> str:
    """scheme://host[:port]: robots.txt rules apply per origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def resolve_link(base: str, href: str) -> str | None:
    """Absolute canonical http(s) URL of `href` on a page at `base`, or None."""
    href = href.strip()
    if not href or href.startswith("#"):
        return None
    try:
        absolute = urljoin(base, href)
        if not is_http_url(absolute):
            return None
        return canonicalize(absolute)
    except ValueError:
        return None


def host_in_scope(host: str, allowed: Iterable[str]) -> bool:
    """True when `host` is one of `allowed` or a subdomain of one."""
    return any(host == name or host.endswith("." + name) for name in allowed)
