"""What the coordinator (backends/redis.py) and the workers (redis_worker.py) of the redis
backend share: the client, the keys of a crawl id, the timings both sides rely on,
and the masking of passwords (SPEC 8: a password is never printed)."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import UsageError

try:
    import redis
except ImportError:  # the extra is not installed: say how to get it when chosen
    redis = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

GROUP = "workers"
BATCH = 16  # tasks per XREADGROUP and results per pipeline: the issue measured 51 -> 4 us of Redis CPU
RENEW_EVERY = 1.0  # seconds between a worker's renewals of what it holds
CLAIM_IDLE = 5.0  # seconds without renewal after which a task is taken over (SPEC: within 10 s)
HEARTBEAT_TTL = 5.0  # seconds a worker's heartbeat outlives its last renewal
ENV_URL = "SCRAPER_REDIS_URL"

def need_redis() -> None:
    """Exit-2 error when the client library is missing."""
    if redis is None:
        raise UsageError("the redis backend needs redis-py: pip install 'redis[hiredis]>=5'")


def redis_url(url: str | None) -> str:
    """The URL given, else $SCRAPER_REDIS_URL; a usage error when there is neither."""
    url = url or os.environ.get(ENV_URL)
    if not url:
        raise UsageError(f"the redis backend needs --redis URL (or ${ENV_URL})")
    return url


def masked(url: str) -> str:
    """The URL with its password replaced by ***: what every message shows."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def connect(url: str) -> Any:
    """A client of `url`, checked with a PING; UsageError with one masked line if refused."""
    need_redis()
    try:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        client.ping()
    except redis.AuthenticationError as exc:
        raise UsageError(_refused_login(url, exc)) from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise UsageError(_refused_login(url, exc)) from None
        raise UsageError(f"Redis at {masked(url)}: {exc}") from None
    except (redis.ConnectionError, redis.TimeoutError, ValueError) as exc:
        raise UsageError(f"cannot reach Redis at {masked(url)}: {reason(exc)}") from None
    except redis.RedisError:  # InvalidResponse: something else answers there (an HTTP server)
        raise UsageError(f"{masked(url)} is not a Redis server (it does not speak its protocol)") from None
    return client


def _refused_login(url: str, exc: BaseException) -> str:
    """No password given (NOAUTH) and a wrong one (WRONGPASS) call for different fixes."""
    if urlsplit(url).password is None and "WRONGPASS" not in str(exc):
        return f"Redis at {masked(url)} needs a password: give it in the URL (redis://:PASSWORD@host)"
    return f"Redis at {masked(url)} refused the password (or user)"


def reason(exc: BaseException) -> str:
    return str(exc).split("\n")[0] or type(exc).__name__


def node_name() -> str:
    """This worker process as records and `scraper status` name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Keys:
    """The keys of one crawl id."""

    crawl_id: str

    def __getattr__(self, name: str) -> str:
        return f"scraper:{self.crawl_id}:{name}"

    def worker(self, name: str) -> str:
        return f"scraper:{self.crawl_id}:worker:{name}"


class WarnOnce:
    """Logs a bad message once per kind, then counts quietly (a flood stays one line)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, where: str, exc: Exception) -> None:
        if where not in self.seen:
            self.seen.add(where)
            log.warning("skipped a message in %s that is not ours (%s); not run", where, exc)
