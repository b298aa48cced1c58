"""numpy for the frontier (seen.py, frontier.py), imported when first used.

numpy costs a process 60-120 ms and about 15 MB to import. Only the crawl's
main process needs it; so `np` is a module that imports numpy on its first
attribute, and `prefetch()` imports it in a thread while the crawl opens its
output and store (the seeds are the first to need it). Worker processes,
`scraper worker` and `scraper --help` never import it.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from typing import TYPE_CHECKING, Any


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until one of its attributes is read; then takes
    its names, so that later reads are plain module attribute reads."""

    def __getattr__(self, name: str) -> Any:
        module = _import_numpy()  # waits for a prefetch under way
        self.__dict__.update(module.__dict__)
        return getattr(module, name)


def _import_numpy() -> types.ModuleType:
    """numpy, with OpenBLAS on one thread unless the user chose otherwise: the
    frontier never multiplies matrices, and a second BLAS thread spins for a
    while after the import (0.15 s of CPU instead of 0.07 here, on a machine
    whose cores the workers need). The variable is read once, when numpy loads
    its BLAS; it is taken back after, so that no process started later inherits it."""
    with _IMPORT_LOCK:
        if "numpy" in sys.modules:
            return sys.modules["numpy"]
        ours = "OPENBLAS_NUM_THREADS" not in os.environ
        if ours:
            os.environ["OPENBLAS_NUM_THREADS"] = "1"
        try:
            return importlib.import_module("numpy")
        finally:
            if ours:
                os.environ.pop("OPENBLAS_NUM_THREADS", None)


_IMPORT_LOCK = threading.Lock()


if TYPE_CHECKING:
    import numpy as np
else:
    np = _OnFirstUse("numpy")


def prefetch() -> threading.Thread:
    """Import numpy in a thread; the caller joins it before the process exits
    (an import cut short at exit can crash the interpreter)."""
    thread = threading.Thread(target=_import_numpy, name="import-numpy")
    thread.start()
    return thread
