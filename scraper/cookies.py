"""Cookies given to a crawl (--cookie, --cookies FILE) as plain data a worker anywhere can load.

Pure (stdlib only): config checks a cookies.txt file with it, and the crawl
turns the options into `CookieSpec` tuples for the WorkerSpec (JSON on the
wire); session.py puts them in each worker's requests.Session.
"""

from __future__ import annotations

import http.cookiejar
import time
from collections.abc import Iterable

# (domain, path, name, value, secure). A domain with a leading dot is sent to
# its subdomains too; one without, to that host only (cookies.txt's
# include-subdomains column, RFC 6265's host-only flag).
CookieSpec = tuple[str, str, str, str, bool]


class CookieError(ValueError):
    """A cookies.txt file that cannot be read."""


def load_cookie_file(path: str) -> list[CookieSpec]:
    """The cookies of a Netscape cookies.txt file (as wget --load-cookies and
    curl -b read it: session cookies included, expired ones left out)."""
    jar = http.cookiejar.MozillaCookieJar()
    try:
        jar.load(path, ignore_discard=True, ignore_expires=True)
    except (OSError, http.cookiejar.LoadError, UnicodeDecodeError) as exc:
        raise CookieError(f"cannot read cookies from {path!r}: {exc}") from None
    now = time.time()
    # Expiry 0 is a session cookie to curl and wget (http.cookiejar reads it as expired).
    live = [c for c in jar if not c.expires or c.expires > now]
    return [(c.domain, c.path or "/", c.name, c.value or "", bool(c.secure)) for c in live]


def seed_cookies(pairs: Iterable[tuple[str, str]], hosts: Iterable[str]) -> list[CookieSpec]:
    """--cookie name=value: host-only cookies for each seed host, on every path."""
    return [(host, "/", name, value, False) for host in hosts for name, value in pairs]
