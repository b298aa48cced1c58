"""The backends: the one place that knows which exist and builds them.

A backend is named here once; the command line's choices, the validation of
`CrawlConfig.backend` and `get_backend()` all read this table. The
implementations are imported only when chosen (each pulls in what it needs:
multiprocessing, or a Redis client).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend, Settings

# name -> "module:class" of its implementation, and a line for --help
BACKENDS: dict[str, tuple[str, str]] = {
    "process": ("scraper.backends.process:ProcessBackend", "worker processes, each running fetch threads"),
    "thread": ("scraper.backends.thread:ThreadBackend", "worker threads of this process, sharing its GIL"),
    "redis": ("scraper.backends.redis:RedisBackend", "Redis Streams: workers on any machine"),
}
BACKEND_NAMES = tuple(BACKENDS)


def get_backend(name: str, config: Settings) -> Backend:
    """The backend called `name`, set up from what it needs of `config` (a CrawlConfig)."""
    try:
        target = BACKENDS[name][0]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}") from None
    module, _, cls = target.partition(":")
    backend: Backend = getattr(importlib.import_module(module), cls).from_config(config)
    return backend
