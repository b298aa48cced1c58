"""CrawlConfig: every setting of a crawl, frozen and validated once."""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._version import __version__
from .errors import UsageError
from .parse import compile_select

PROJECT_URL = "https://github.com/scraper-dev/scraper"
DEFAULT_USER_AGENT = f"scraper/{__version__} (+{PROJECT_URL})"
DEFAULT_OUTPUT = os.path.join("data", "records.jsonl")
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
DEFAULT_PER_HOST = 8
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Fetch threads per worker process when --concurrency is not given. Idle
# threads cost little memory (2 processes x 32 threads ~ 50 MB in all); how
# many are busy is tuned while crawling (scheduler.InFlightLimit).
AUTO_THREADS_PER_WORKER = 32
BACKENDS = ("process", "thread")
START_METHODS = ("fork", "spawn", "forkserver")

ParseCallback = Callable[[dict, Any], "Mapping[str, Any] | None"]


def default_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class CrawlConfig:
    """Settings shared by the CLI and the library; names follow the long options.

    `select` accepts a mapping {name: css}, "NAME=CSS" strings or pairs, and is
    stored as a tuple of (name, css) pairs. `parse` is a top-level function
    `parse(record, html_tree) -> dict` whose result is merged into `fields`
    (top-level so that it pickles for process workers).
    """

    workers: int = field(default_factory=default_workers)
    backend: str = "process"
    concurrency: int | None = None
    depth: int = 0
    max_pages: int | None = None
    allow_domain: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    delay: float = 0.0
    per_host: int = DEFAULT_PER_HOST
    max_bytes: int = DEFAULT_MAX_BYTES
    user_agent: str = DEFAULT_USER_AGENT
    ignore_robots: bool = False
    select: tuple[tuple[str, str], ...] = ()
    start_method: str | None = None
    output: str | None = None
    overwrite_output: str | None = None
    resume: bool = False
    parse: ParseCallback | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalize once, here
        try:
            set_(self, "allow_domain", _normalize_domains(self.allow_domain))
            set_(self, "select", _normalize_select(self.select))
            set_(self, "timeout", _number("timeout", self.timeout))
            set_(self, "delay", _number("delay", self.delay))
            _check(isinstance(self.user_agent, str), "user_agent must be a string")
        except (TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, UsageError):
                raise
            raise UsageError(f"bad setting: {exc}") from None
        self._validate()

    def _validate(self) -> None:
        _check(_is_int(self.workers) and self.workers >= 1, "workers must be an integer >= 1")
        _check(self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}")
        _check(
            self.concurrency is None or (_is_int(self.concurrency) and self.concurrency >= 1),
            "concurrency must be an integer >= 1",
        )
        _check(_is_int(self.depth) and self.depth >= 0, "depth must be an integer >= 0")
        _check(
            self.max_pages is None or (_is_int(self.max_pages) and self.max_pages >= 1),
            "max_pages must be an integer >= 1",
        )
        _check(self.timeout > 0, "timeout must be > 0 seconds")
        _check(_is_int(self.retries) and self.retries >= 0, "retries must be an integer >= 0")
        _check(self.delay >= 0, "delay must be >= 0 seconds")
        _check(_is_int(self.per_host) and self.per_host >= 1, "per_host must be an integer >= 1")
        _check(_is_int(self.max_bytes) and self.max_bytes >= 1, "max_bytes must be an integer >= 1")
        _check(bool(self.user_agent.strip()), "user_agent must not be empty")
        _check(
            self.start_method is None or self.start_method in START_METHODS,
            f"start_method must be one of {', '.join(START_METHODS)}",
        )
        _check(
            not (self.output and self.overwrite_output),
            "give output or overwrite_output, not both",
        )
        _check(not (self.resume and self.overwrite_output),
               "resume continues its output: give it with -o/output, not -O/overwrite_output")
        _check(not self.resume or bool(self.output), "resume needs the output file of the crawl")
        _check(self.parse is None or callable(self.parse), "parse must be a callable")
        _check(self.parse is None or _picklable(self.parse),
               "parse must be a top-level function of a module (it is sent to worker processes)")

    @property
    def threads_per_worker(self) -> int:
        """Fetch threads in each worker process: enough for `concurrency`, or the
        automatic ceiling (the scheduler then decides how many are busy)."""
        if self.concurrency is None:
            return AUTO_THREADS_PER_WORKER
        return -(-self.concurrency // self.workers)  # ceiling division

    @property
    def parse_ref(self) -> str | None:
        """The parse callback by import name ("module:function")."""
        from .callbacks import callback_ref

        return None if self.parse is None else callback_ref(self.parse)

    @property
    def output_path(self) -> str | None:
        """The JSONL file to write, whichever option named it."""
        return self.overwrite_output or self.output

    def replace(self, **changes: Any) -> CrawlConfig:
        """A copy with some settings changed (validated again)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return CrawlConfig(**values)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(name: str, value: object) -> float:
    _check(isinstance(value, (int, float)) and not isinstance(value, bool),
           f"{name} must be a number of seconds")
    number = float(value)  # type: ignore[arg-type]
    _check(math.isfinite(number), f"{name} must be finite")
    return number


def _normalize_domains(domains: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(domains, str):
        domains = [domains]
    names = []
    for domain in domains:
        _check(isinstance(domain, str), f"bad domain: {domain!r}")
        text = domain.strip().lower().removeprefix("*.")  # subdomains are always included
        try:  # "host", "host:port", "[::1]:8080": a port is ignored ("any port")
            name = (urlsplit("//" + text).hostname or "").strip(".")
            name = name.encode("idna").decode("ascii") if ":" not in name else name  # as in URLs
        except (ValueError, UnicodeError):
            name = ""
        _check(bool(name) and "/" not in text and " " not in text, f"bad domain: {domain!r}")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _normalize_select(
    select: Mapping[str, str] | Iterable[str | tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    items = select.items() if isinstance(select, Mapping) else select
    pairs = []
    for item in items:
        if isinstance(item, str):
            name, sep, css = item.partition("=")
            _check(bool(sep), f"select must look like NAME=CSS: {item!r}")
        else:
            _check(isinstance(item, (tuple, list)) and len(item) == 2
                   and all(isinstance(part, str) for part in item),
                   f"select must be NAME=CSS strings or (name, css) pairs: {item!r}")
            name, css = item
        name, css = name.strip(), css.strip()
        _check(bool(name) and bool(css), f"select must look like NAME=CSS: {name}={css}")
        try:
            compile_select(css)
        except ValueError as exc:
            raise UsageError(f"bad CSS selector for {name!r}: {css!r} ({exc})") from None
        pairs.append((name, css))
    return tuple(pairs)
