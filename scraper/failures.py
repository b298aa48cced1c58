"""What went wrong in a fetch, as an error string: the exceptions of requests,
urllib3 and the socket layer, read down to their cause, become an error kind
of errors.py with a short detail ("connection: cannot resolve host name ...").

errors.py holds the kinds and stays free of requests; this module knows the
exceptions that carry them.
"""

from __future__ import annotations

import re
import socket

import requests
import urllib3.exceptions

from . import errors

_INCOMPLETE_READ = re.compile(r"IncompleteRead\([^)]*\)")

CONNECT_TIMEOUT = f"{errors.TIMEOUT}: connect"
UNRESOLVED = "cannot resolve host name"  # how the detail of a failed name resolution begins


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
