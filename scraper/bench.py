"""`--bench-append`: the question behind the aggregator, measured.

Several processes produce integers that must end up in one list. How fast
is each way of getting them there? Slow methods stop after TIME_CAP seconds
and their time for all N items is extrapolated (and marked so).
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable
from typing import Any

TIME_CAP = 3.0  # seconds a method may run before its rate is extrapolated
BATCH = 10_000  # items per message in the batched queue


def _serial(total: int, producers: int) -> int:
    items: list[int] = []
    append = items.append
    for i in range(total):
        append(i)
    return len(items)


def _append_to_manager_list(shared: Any, count: int, deadline: float) -> None:
    for i in range(count):
        shared.append(i)
        if i % 256 == 0 and time.time() > deadline:
            return


def _manager_list(total: int, producers: int) -> int:
    context = multiprocessing.get_context()
    with context.Manager() as manager:
        shared = manager.list()
        _run_producers(context, _append_to_manager_list, (shared,), total, producers)
        return len(shared)


def _put_items(queue: Any, count: int, deadline: float) -> None:
    for i in range(count):
        queue.put(i)
        if i % 256 == 0 and time.time() > deadline:
            break
    queue.put(None)


def _put_batches(queue: Any, count: int, deadline: float) -> None:
    for start in range(0, count, BATCH):
        queue.put(list(range(start, min(start + BATCH, count))))
        if time.time() > deadline:
            break
    queue.put(None)


def _queue(producer: Callable[..., None], batched: bool) -> Callable[[int, int], int]:
    def run(total: int, producers: int) -> int:
        context = multiprocessing.get_context()
        queue = context.Queue(maxsize=10_000)
        items: list[int] = []
        processes = _start_producers(context, producer, (queue,), total, producers)
        finished = 0
        while finished < producers:  # the aggregator: one reader, one list
            message = queue.get()
            if message is None:
                finished += 1
            elif batched:
                items.extend(message)
            else:
                items.append(message)
        for process in processes:
            process.join()
        return len(items)

    return run


def _start_producers(context: Any, target: Callable, args: tuple, total: int, n: int) -> list:
    deadline = time.time() + TIME_CAP
    share = total // n
    processes = [context.Process(target=target, args=(*args, share + (i < total % n), deadline))
                 for i in range(n)]  # fmt: skip
    for process in processes:
        process.start()
    return processes


def _run_producers(context: Any, target: Callable, args: tuple, total: int, n: int) -> None:
    for process in _start_producers(context, target, args, total, n):
        process.join()


METHODS = [
    ("plain list, one process (baseline)", _serial),
    ("Manager().list(), one append per item", _manager_list),
    ("Queue, one put per item", _queue(_put_items, batched=False)),
    (f"Queue of {BATCH:,}-item batches -> one aggregator", _queue(_put_batches, batched=True)),
]


def run_append_benchmark(total: int, producers: int) -> int:
    """Print items/s of each way to gather `total` integers from `producers` processes."""
    print(f"Appending {total:,} integers to one list from {producers} processes "
          f"(slow methods stop after {TIME_CAP:g} s and are extrapolated):\n")  # fmt: skip
    rows = []
    for name, method in METHODS:
        print(f"  {name} ...", file=sys.stderr)
        started = time.perf_counter()
        done = method(total, producers)
        seconds = time.perf_counter() - started
        rate = done / seconds if seconds > 0 else float("inf")
        estimate = "" if done >= total else " (extrapolated)"
        rows.append((name, f"{done:,}", f"{rate:,.0f}", f"{total / rate:,.1f} s{estimate}"))
    header = ("method", "items done", "items/s", f"time for {total:,}")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
    print("\nOne message per item pays a pickle, a pipe write and a lock per item; a batch pays "
          "them once. The crawler applies it: a fetcher parses the page itself and sends one "
          "message per page (the record, never the HTML), and the aggregator writes each batch "
          "of records it drains with one write.")
    return 0
