"""The library API: `crawl()` and `iter_crawl()` over a `Crawl`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .config import CrawlConfig
from .crawl import Crawl
from .errors import UsageError
from .seeds import parse_seeds


def iter_crawl(
    seeds: Iterable[str] | str, config: CrawlConfig | None = None, **settings: Any
) -> Iterator[dict[str, Any]]:
    """Crawl `seeds` and yield one record (a dict) per page as it is written.

    Settings are CrawlConfig fields and the chosen backend's options, given as
    a `config` or as keywords (keywords override the config). Memory stays
    bounded: records are not kept. Leaving the loop early stops the workers.
    """
    config = _make_config(config, settings)
    urls = _check_seeds(seeds)
    with Crawl(config, urls) as crawl:
        yield from crawl.run()


def crawl(
    seeds: Iterable[str] | str, config: CrawlConfig | None = None, **settings: Any
) -> list[dict[str, Any]]:
    """Crawl `seeds` and return every record. JSONL is written only with `output=`."""
    return list(iter_crawl(seeds, config, **settings))


def _make_config(config: CrawlConfig | None, settings: dict[str, Any]) -> CrawlConfig:
    if config is None:
        return CrawlConfig(**settings)
    return config.replace(**settings) if settings else config


def _check_seeds(seeds: Iterable[str] | str) -> list[str]:
    if isinstance(seeds, str):
        seeds = [seeds]
    urls, problems = parse_seeds(seeds)
    if problems:
        raise UsageError(f"bad seed {problems[0]}")
    if not urls:
        raise UsageError("no seed URL given")
    return urls
