"""The backends: the one place that knows which exist and builds them.

A backend is one entry of BACKENDS. Everything else reads the table: the
command line's `--backend` choices and help, the options a backend declares
for itself (`--redis`, `--crawl-id`: stored in `CrawlConfig.backend_options`),
its subcommands (`scraper worker`, `scraper status`), its `--demo`, and the
rules that depend on where its workers run. cli.py and config.py name no
backend. The implementations are imported only when chosen (each pulls in
what it needs: multiprocessing, or a Redis client).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..options import TEXT, Option

if TYPE_CHECKING:
    from .base import Backend, Settings


@dataclass(frozen=True)
class BackendOption:
    """A setting only one backend has: its command-line option and its default."""

    default: Any
    option: Option


@dataclass(frozen=True)
class Entry:
    """What the rest of the program knows of a backend."""

    target: str  # "module:class" of its Backend
    summary: str  # a line for --help
    processes: bool = True  # it starts worker processes (--start-method applies)
    remote_workers: bool = False  # its workers may all run elsewhere: -w 0 is allowed; not for --compare
    options: Mapping[str, BackendOption] = field(default_factory=dict)  # name -> its own setting
    commands: tuple[str, ...] = ()  # `scraper COMMAND ...`, run by `command_main(argv)`
    command_main: str | None = None  # "module:function"
    demo: str | None = None  # "module:function(config) -> exit status" of `--demo --backend NAME`


def _redis_options() -> dict[str, BackendOption]:
    url = Option(("--redis",), TEXT, metavar="URL", optional=True,
                 help="Redis of a distributed crawl: redis://, rediss:// or unix:// "
                      "(default: $SCRAPER_REDIS_URL)")
    crawl_id = Option(("--crawl-id",), TEXT, metavar="ID",
                      help="name of the crawl in Redis, so that crawls can share one (default: default)")
    return {"redis": BackendOption(None, url), "crawl_id": BackendOption("default", crawl_id)}  # fmt: skip


DEFAULT_BACKEND = "process"
BACKENDS: dict[str, Entry] = {
    "process": Entry("scraper.backends.process:ProcessBackend",
                     "worker processes, each running fetch threads"),  # fmt: skip
    "thread": Entry("scraper.backends.thread:ThreadBackend",
                    "worker threads of this process, sharing its GIL", processes=False),  # fmt: skip
    "redis": Entry("scraper.backends.redis:RedisBackend", "Redis Streams: workers on any machine",
                   remote_workers=True, options=_redis_options(), commands=("worker", "status"),
                   command_main="scraper.remote:main", demo="scraper.redis_demo:run_redis_demo"),  # fmt: skip
}
BACKEND_NAMES = tuple(BACKENDS)


def load(target: str) -> Any:
    """The object a "module:name" string names (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def get_backend(name: str, config: Settings) -> Backend:
    """The backend called `name`, set up from what it needs of `config` (a CrawlConfig)."""
    try:
        entry = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}") from None
    backend: Backend = load(entry.target).from_config(config)
    return backend


def command_entry(command: str) -> Entry | None:
    """The backend whose subcommand `command` is (`worker`), if any."""
    return next((entry for entry in BACKENDS.values() if command in entry.commands), None)
