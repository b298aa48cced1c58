"""numpy for the frontier (seen.py, frontier.py), imported when first used.

numpy costs a process 60-120 ms and about 15 MB to import. Only the crawl's
main process needs it, and only once links come back; so `np` is a module
that imports numpy on its first attribute, and `prefetch()` imports it in a
thread while the crawl waits for its first pages (a fetch, robots.txt), when
the main thread has nothing to do. Worker processes, `scraper worker` and
`scraper --help` never import it.
"""

from __future__ import annotations

import importlib
import threading
import types
from typing import TYPE_CHECKING, Any


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until one of its attributes is read; then takes
    its names, so that later reads are plain module attribute reads."""

    def __getattr__(self, name: str) -> Any:
        module = importlib.import_module(self.__name__)  # waits for a prefetch under way
        self.__dict__.update(module.__dict__)
        return getattr(module, name)


if TYPE_CHECKING:
    import numpy as np
else:
    np = _OnFirstUse("numpy")


def prefetch() -> threading.Thread:
    """Import numpy in a thread; the caller joins it before the process exits
    (an import cut short at exit can crash the interpreter)."""
    thread = threading.Thread(target=importlib.import_module, args=("numpy",), name="import-numpy")
    thread.start()
    return thread
