"""scraper: a concurrent web scraper with a process-pool backend.

    >>> from scraper import crawl
    >>> records = crawl(["https://example.com/"], workers=4, depth=1)  # doctest: +SKIP
"""

from ._version import __version__
from .api import crawl, iter_crawl
from .config import CrawlConfig
from .errors import ScraperError, SeedFileError, UsageError

__all__ = [
    "CrawlConfig",
    "ScraperError",
    "SeedFileError",
    "UsageError",
    "__version__",
    "crawl",
    "iter_crawl",
]
