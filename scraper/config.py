"""CrawlConfig: every setting of a crawl, declared once, frozen and validated once.

Each field is declared with `option(default, *flags, kind=..., help=...)`:
`cli.build_parser()` makes the command line from these declarations, and
`__post_init__` checks each value against its kind. A new setting is one
field here. This module stays pure (no lxml, requests or multiprocessing):
worker processes and remote workers import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ._version import __version__
from .backends import BACKEND_NAMES, BACKENDS, DEFAULT_BACKEND, Entry
from .callbacks import callback_ref
from .options import (
    CALLBACK,
    COOKIE_FILE,
    COOKIES,
    CREDENTIALS,
    FILE_PATH,
    FLAG,
    HEADERS,
    HOST_NAMES,
    NON_NEGATIVE_INT,
    NON_NEGATIVE_SECONDS,
    OPTION,
    PATTERNS,
    POSITIVE_INT,
    POSITIVE_SECONDS,
    SELECTS,
    TEXT,
    Choice,
    Computed,
    Option,
    SettingError,
    option,
)

PROJECT_URL = "https://github.com/scraper-dev/scraper"
DEFAULT_USER_AGENT = f"scraper/{__version__} (+{PROJECT_URL})"
DEFAULT_OUTPUT = os.path.join("data", "records.jsonl")  # the command line's; the library writes none
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
DEFAULT_PER_HOST = 8
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Fetch threads per worker process when --concurrency is not given. Idle
# threads cost little memory (2 processes x 32 threads ~ 50 MB in all); how
# many are busy is tuned while crawling (scheduler.InFlightLimit).
AUTO_THREADS_PER_WORKER = 32
START_METHODS = ("fork", "spawn", "forkserver")

ParseCallback = Callable[[dict, Any], "Mapping[str, Any] | None"]


def default_workers() -> int:
    return os.cpu_count() or 1


def _backends_help() -> str:
    kinds = "; ".join(f"{name}: {entry.summary}" for name, entry in BACKENDS.items())
    return f"worker type ({kinds.replace('%', '%%')}; default: %(default)s)"  # argparse formats help with %


@dataclass(frozen=True)
class CrawlConfig:
    """Settings shared by the CLI and the library; names follow the long options.

    `select` accepts a mapping {name: css}, "NAME=CSS" strings or pairs, and is
    stored as a tuple of (name, css) pairs. `parse` is a function
    `parse(record, html_tree) -> dict` whose result is merged into `fields`, or
    "module:function" naming one; it is stored as the function, and `parse_ref`
    gives its name (workers that do not start from this process import it).

    `backend_options` holds the settings the chosen backend declares for itself
    (backends/__init__.py: `redis` and `crawl_id` for redis), its defaults filled
    in; `CrawlConfig(backend="redis", redis=URL)` and `replace()` take them as
    keywords like the others.
    """

    output: str | None = option(
        None, "-o", "--output", kind=FILE_PATH, metavar="FILE",
        help=f"JSONL output, appended to; '-' for standard output (default: {DEFAULT_OUTPUT})")
    overwrite_output: str | None = option(
        None, "-O", "--overwrite-output", kind=FILE_PATH, metavar="FILE",
        help="JSONL output, emptied once the crawl has started (a usage error leaves it as it was)")
    workers: int = option(
        Computed(default_workers), "-w", "--workers", kind=NON_NEGATIVE_INT, metavar="N",
        help="fetcher processes or threads on this machine (0: none, with a backend whose workers run "
             f"elsewhere) (default: number of CPUs, {default_workers()} here)")
    backend: str = option(DEFAULT_BACKEND, "--backend", kind=Choice(BACKEND_NAMES), help=_backends_help())
    concurrency: int | None = option(
        None, "--concurrency", kind=POSITIVE_INT, metavar="N",
        help="most requests in flight in all (fetch threads spread over the worker processes; "
             f"default: tuned while crawling, up to {AUTO_THREADS_PER_WORKER} per worker)")
    depth: int = option(
        0, "--depth", kind=NON_NEGATIVE_INT, metavar="N",
        help="follow links up to N hops from a seed (default: %(default)s, seeds only)")
    max_pages: int | None = option(
        None, "--max-pages", kind=POSITIVE_INT, metavar="N", help="stop after N pages (records)")
    allow_domain: tuple[str, ...] = option(
        (), "--allow-domain", kind=HOST_NAMES, metavar="HOST",
        help="also follow links to HOST and its subdomains (repeatable)")
    allow: tuple[str, ...] = option(
        (), "--allow", kind=PATTERNS, metavar="REGEX",
        help="follow only URLs whose canonical form matches REGEX (re.search; repeatable: any of them; "
             "applied to links, sitemap entries and redirect targets, not to seeds)")
    deny: tuple[str, ...] = option(
        (), "--deny", kind=PATTERNS, metavar="REGEX",
        help="do not follow URLs whose canonical form matches REGEX (repeatable; wins over --allow)")
    sitemaps: bool = option(
        False, "--sitemaps", kind=FLAG,
        help="also crawl the URLs of each seed origin's sitemaps (robots.txt Sitemap: lines, "
             "else /sitemap.xml)")
    timeout: float = option(
        DEFAULT_TIMEOUT, "--timeout", kind=POSITIVE_SECONDS, metavar="S",
        help="total deadline of one fetch in seconds (default: %(default)g)")
    retries: int = option(
        DEFAULT_RETRIES, "--retries", kind=NON_NEGATIVE_INT, metavar="N",
        help="retries on connection errors, connect timeouts, 429 and 5xx (default: %(default)s)")
    delay: float = option(
        0.0, "--delay", kind=NON_NEGATIVE_SECONDS, metavar="S",
        help="minimum seconds between two requests to one host (default: %(default)g)")
    per_host: int = option(
        DEFAULT_PER_HOST, "--per-host", kind=POSITIVE_INT, metavar="N",
        help="most requests in flight to one host (default: %(default)s)")
    max_bytes: int = option(
        DEFAULT_MAX_BYTES, "--max-bytes", kind=POSITIVE_INT, metavar="N",
        help="largest body read, decompressed (default: %(default)s, 10 MiB)")
    user_agent: str = option(
        DEFAULT_USER_AGENT, "--user-agent", kind=TEXT, metavar="UA",
        help="User-Agent header; robots.txt groups are matched with its product token: the leading "
             "name ('FooBot/2.1 (+url)': foobot), or in a Mozilla-compatible agent the name after "
             "'compatible;' ('Mozilla/5.0 (compatible; ExampleBot/0.1; url)': examplebot) "
             "(default: %(default)s)")
    header: tuple[tuple[str, str], ...] = option(
        (), "-H", "--header", kind=HEADERS, metavar="'Name: value'", secret=True,
        help="extra request header (repeatable); Authorization and Cookie go to the seeds' origins only")
    cookie: tuple[tuple[str, str], ...] = option(
        (), "--cookie", kind=COOKIES, metavar="name=value", secret=True,
        help="cookie sent to the seeds' hosts: the same host name on any port and scheme, not its "
             "subdomains (a host-only cookie, RFC 6265) (repeatable)")
    cookies: str | None = option(
        None, "--cookies", kind=COOKIE_FILE, metavar="FILE",
        help="cookies of a Netscape cookies.txt file (as wget --load-cookies, curl -b)")
    auth: str | None = option(
        None, "--auth", kind=CREDENTIALS, metavar="USER:PASS", secret=True,
        help="HTTP Basic credentials, sent only to the seeds' origins (never to another origin, "
             "redirects included)")
    ignore_robots: bool = option(False, "--ignore-robots", kind=FLAG, help="do not fetch or obey robots.txt")
    select: tuple[tuple[str, str], ...] = option(
        (), "--select", kind=SELECTS, metavar="NAME=SELECTOR",
        help="extra field, a list of strings (repeatable, one NAME each): the whitespace-collapsed text "
             "of what a CSS selector matches; CSS with ::text or ::attr(NAME), or xpath:EXPR, give "
             "exactly the strings of parsel's getall()")
    resume: bool = option(
        False, "--resume", kind=FLAG,
        help="continue an interrupted crawl from its output file (-o) and its frontier (the folder "
             "OUT.frontier beside it): fetch only what is missing")
    start_method: str | None = option(
        None, "--start-method", kind=Choice(START_METHODS),
        help="multiprocessing start method (default: the platform's)")
    parse: ParseCallback | str | None = option(
        None, "--parse", kind=CALLBACK, metavar="MODULE:FUNCTION",
        help="parse callback: FUNCTION(record, html_tree) returns a dict of extra fields; "
             "MODULE is imported from the current folder too")

    since: str | None = option(
        None, "--since", kind=FILE_PATH, metavar="OLD.jsonl",
        help="re-crawl: ask for each page only if it changed since its record in OLD.jsonl "
             "(If-None-Match / If-Modified-Since); a 304 keeps the old record's content and links")
    warc: str | None = option(
        None, "--warc", kind=FILE_PATH, metavar="DIR",
        help="also archive every request and response in DIR as WARC 1.1 (.warc.gz, one per worker process)")
    backend_options: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, **settings: Any) -> None:
        """Settings by name: the fields above, and the options of the chosen backend
        (`CrawlConfig(backend="redis", redis="redis://host")`), which are kept in
        `backend_options`. Not generated: a dataclass's __init__ takes its fields only."""
        own = dict(settings.pop("backend_options", None) or {})
        own.update({name: settings.pop(name) for name in list(settings) if name not in OPTIONS})
        for spec in fields(self):
            if spec.name in settings:
                value = settings[spec.name]
            elif spec.default is not MISSING:
                value = spec.default
            else:
                value = spec.default_factory()  # type: ignore[operator]  # (MISSING excluded: every field has a default)
            object.__setattr__(self, spec.name, value)
        object.__setattr__(self, "backend_options", own)
        self.__post_init__()

    def __post_init__(self) -> None:
        for name, spec in OPTIONS.items():
            # frozen: the one place values are normalized
            object.__setattr__(self, name, spec.checked(name, getattr(self, name)))
        object.__setattr__(self, "backend_options", _backend_options(self.backend, self.backend_options))
        for allowed, problem in RULES:
            if not allowed(self):
                raise SettingError(problem)

    @property
    def entry(self) -> Entry:
        """The registry entry of the chosen backend."""
        return BACKENDS[self.backend]

    @property
    def parse_ref(self) -> str | None:
        """The parse callback as "module:function" (the form workers elsewhere import), or None."""
        return None if self.parse is None else callback_ref(self.parse)  # type: ignore[arg-type]

    @property
    def threads_per_worker(self) -> int:
        """Fetch threads in each worker process: enough for `concurrency`, or the
        automatic ceiling (the scheduler then decides how many are busy)."""
        if self.concurrency is None:
            return AUTO_THREADS_PER_WORKER
        return -(-self.concurrency // max(self.workers, 1))  # ceiling division

    @property
    def output_path(self) -> str | None:
        """The JSONL file to write, whichever option named it."""
        return self.overwrite_output or self.output

    def replace(self, **changes: Any) -> CrawlConfig:
        """A copy with some settings changed (validated again). Another backend
        starts from its own defaults: the old one's options are not its own."""
        values: dict[str, Any] = {name: getattr(self, name) for name in OPTIONS}
        if changes.get("backend", self.backend) == self.backend:
            values.update(self.backend_options)
        values.update(changes)
        return CrawlConfig(**values)


# field name -> its option, in the order of --help
OPTIONS: dict[str, Option] = {
    spec.name: spec.metadata[OPTION] for spec in fields(CrawlConfig) if OPTION in spec.metadata
}


def option_named(name: str) -> Option:
    """The option of a CrawlConfig field or of a backend's own setting."""
    if name in OPTIONS:
        return OPTIONS[name]
    return next(entry.options[name].option for entry in BACKENDS.values() if name in entry.options)


def _backend_options(backend: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of `backend`, checked, with its defaults; SettingError for one of
    another backend, TypeError (as for an unknown keyword) for one no backend has."""
    declared = BACKENDS[backend].options
    for name in given:
        if name in declared:
            continue
        owners = [f"--backend {other}" for other, entry in BACKENDS.items() if name in entry.options]
        if not owners:
            raise TypeError(f"CrawlConfig has no setting {name!r}")
        raise SettingError(f"{{{name}}} is an option of {' and '.join(owners)}, not of --backend {backend}")
    return {name: own.option.checked(name, given.get(name, own.default)) for name, own in declared.items()}

# Settings that contradict each other: (allowed(config), message naming the fields in braces).
RULES: tuple[tuple[Callable[[CrawlConfig], bool], str], ...] = (
    (lambda c: not (c.output and c.overwrite_output), "give {output} or {overwrite_output}, not both"),
    (lambda c: not (c.resume and c.overwrite_output),
     "{resume} continues its output: give it with {output}, not {overwrite_output}"),
    (lambda c: not c.resume or bool(c.output), "{resume} needs the output file of the crawl ({output})"),
    (lambda c: not (c.since and c.overwrite_output and _same_file(c.since, c.overwrite_output)),
     "{since} is read while the crawl runs: it cannot be the file {overwrite_output} empties"),
    (lambda c: not (c.resume and c.output == "-"), "{resume} reads its output again: give {output} a file"),
    (lambda c: c.workers > 0 or c.entry.remote_workers,
     "{workers} must be >= 1 (0 only with a backend whose workers run elsewhere: "
     + ", ".join(f"--backend {name}" for name, entry in BACKENDS.items() if entry.remote_workers) + ")"),
)


def _same_file(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)
