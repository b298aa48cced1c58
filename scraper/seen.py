"""The frontier's seen-set: every URL the crawl has met, as 64-bit fingerprints.

A log-structured set (Mercator's and BUbiNG's sieve, in the shape of an LSM
tree): sorted runs of unique fingerprints, each run a file that is memory-mapped
read-only, so that the runs cost the main process 8 bytes of disk per URL and
no anonymous memory (the OS keeps the hot pages of the files in its page
cache). New fingerprints gather in a set in memory until the next `persist()`
(the store's commit, once a second), which writes them as a sorted run; runs
of similar size are merged
(sizes stay geometric: O(log n) runs, each fingerprint rewritten O(log n)
times); a large merge runs in a thread. A lookup of a batch is one binary
search per run, vectorized by numpy.

Most links of a growing crawl are new, and a binary search over a large run
is a cache miss per step; so a blocked Bloom filter (2 bytes of memory per
URL) answers first: "certainly not seen" for all but ~0.5 % of new URLs, and
only the others are looked up in the runs. It only skips lookups: the answer
is always the runs' own, exact. It is built at the first lookup (a resumed
crawl's from its runs) and rebuilt, larger, when it fills up: in a thread for
a large set, so that no lookup waits for a read of every run (until it is
ready, the old filter, or none, answers "maybe" more often).

Crash safety is the store's (store.py): `persist()` returns the runs that make
up the set now (written and fsynced); the store commits that list with the
rest of the frontier, and only then are the runs it replaced deleted.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterable

from .numeric import np

FINGERPRINT = "<u8"  # numpy's name of the dtype: little-endian unsigned 64-bit
MERGE_CHUNK = 1 << 20  # fingerprints merged at a time (bounded memory for runs of any size)
SMALL = 1 << 22  # a set this small gets its Bloom filter at once, not in a thread
BACKGROUND_MERGE = 1 << 22  # runs of this many fingerprints (32 MB) and more merge in a thread
_SUFFIX = ".seen"


class SeenSet:
    """`folder`: where the runs live (None: in memory only, for a crawl with no state to keep)."""

    def __init__(self, folder: str | None, runs: Iterable[str] = ()) -> None:
        self.folder = folder
        self._bloom: BlockedBloom | None = None  # None: no filter yet, every lookup goes to the runs
        self._next_bloom: tuple[threading.Thread, BlockedBloom, list[np.ndarray]] | None = None
        # A merge in a thread: the thread, the two runs it merges, and its (name, run) once done.
        self._merging: tuple[threading.Thread, tuple[np.ndarray, np.ndarray], list[tuple[str, np.ndarray]]] \
            | None = None
        self._runs: list[np.ndarray] = []  # oldest (largest) first
        self._names: list[str] = []  # the file of each run
        self._pending: set[int] = set()  # added since the last persist()
        self._obsolete: list[str] = []  # files merged away, deleted after the next commit
        names = list(runs)
        self._ids = itertools.count(1 + max((_number(n) for n in names), default=0))
        for name in names:
            self._runs.append(self._open(name))
            self._names.append(name)
        self._remove_strays(set(names))

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs) + len(self._pending)

    def add_new(self, fingerprints: np.ndarray) -> np.ndarray:
        """Add `fingerprints`; a mask of those that were not in the set (a
        fingerprint repeated within the batch is new the first time only)."""
        if not len(fingerprints):
            return np.zeros(0, dtype=bool)
        ordered = np.sort(fingerprints)
        if (ordered[1:] != ordered[:-1]).all():  # the common case: a page's links are distinct
            keys, first = fingerprints, None
        else:
            keys, first = np.unique(fingerprints, return_index=True)
        known = self._known(keys)
        if first is None:
            new = ~known
        else:
            new = np.zeros(len(fingerprints), dtype=bool)
            new[first[~known]] = True
        fresh = keys[~known]
        if len(fresh):
            self._pending.update(fresh.tolist())
            self._remember(fresh)
        return new

    def _known(self, keys: np.ndarray) -> np.ndarray:
        """A mask of the keys in the set: the Bloom filter, then the pending set, then the runs."""
        known = np.zeros(len(keys), dtype=bool)
        maybe = np.flatnonzero(self._maybe(keys))
        if len(maybe) and self._pending:
            pending = self._pending
            candidates = keys[maybe].tolist()
            found = np.fromiter((key in pending for key in candidates), dtype=bool, count=len(maybe))
            known[maybe[found]] = True
            maybe = maybe[~found]
        if len(maybe):
            candidates = keys[maybe]
            for run in self._runs:
                known[maybe] |= _members(run, candidates)
        return known

    def _maybe(self, keys: np.ndarray) -> np.ndarray:
        if self._bloom is None and self._next_bloom is None:  # the first lookup
            self._rebuild_bloom()
        if self._next_bloom is not None and not self._next_bloom[0].is_alive():
            _, bloom, added = self._next_bloom
            for keys_added in added:
                bloom.add(keys_added)
            self._bloom, self._next_bloom = bloom, None
        if self._bloom is None:
            return np.ones(len(keys), dtype=bool)
        return self._bloom.maybe(keys)

    def _remember(self, fresh: np.ndarray) -> None:
        if self._next_bloom is not None:
            self._next_bloom[2].append(fresh)  # the new filter gets them once it is built
        if self._bloom is not None and not self._bloom.add(fresh) and self._next_bloom is None:
            self._rebuild_bloom()

    def _rebuild_bloom(self) -> None:
        """Build a filter with room for twice the set from the runs, in a thread
        (numpy does the work; the runs it reads never change)."""
        if self._next_bloom is not None:
            return
        runs = [*self._runs, np.fromiter(self._pending, dtype=FINGERPRINT, count=len(self._pending))]
        if len(self) < SMALL:  # small enough to build at once
            self._bloom = _bloom_of(runs, 2 * len(self))
            return
        bloom = BlockedBloom(2 * len(self))
        thread = threading.Thread(target=_fill, args=(bloom, runs), name="seen-bloom", daemon=True)
        self._next_bloom = (thread, bloom, [])
        thread.start()

    def contains(self, fingerprints: np.ndarray) -> np.ndarray:
        """A mask of the fingerprints in the set."""
        return self._known(fingerprints)

    def persist(self) -> list[str]:
        """Write what was added since the last call as a run; the file names of the
        whole set. Files of similar size are merged into one."""
        if self.folder is None:
            return []
        if self._pending:
            fresh = np.sort(np.fromiter(self._pending, dtype=FINGERPRINT, count=len(self._pending)))
            name, run = self._write(fresh)
            self._runs.append(run)
            self._names.append(name)
            self._pending = set()
        self._take_merged()
        self._merge_files()
        return list(self._names)

    def committed(self) -> None:
        """The store committed the list persist() gave: the files merged away can go."""
        for name in self._obsolete:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._path(name))
        self._obsolete = []

    # -- runs --------------------------------------------------------------

    def _merge_files(self) -> None:
        """Merge the newest files while the newer is at least half the older. A
        large merge runs in a thread (numpy lets go of the GIL), one at a time:
        until it is done, its two runs answer lookups, and runs after them merge on."""
        busy = 0  # runs up to the pair merging in a thread, which stays as it is
        if self._merging is not None:
            busy = 1 + next(i for i, run in enumerate(self._runs) if run is self._merging[1][1])
        while len(self._runs) - busy >= 2 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            older, newer = self._runs[-2], self._runs[-1]
            if len(older) + len(newer) >= BACKGROUND_MERGE:
                if self._merging is None:
                    self._start_merge(older, newer)
                return
            self._obsolete += self._names[-2:]
            del self._runs[-2:], self._names[-2:]
            name, run = self._merge_into_file(older, newer)
            self._runs.append(run)
            self._names.append(name)

    def _start_merge(self, older: np.ndarray, newer: np.ndarray) -> None:
        result: list[tuple[str, np.ndarray]] = []
        thread = threading.Thread(target=lambda: result.append(self._merge_into_file(older, newer)),
                                  name="seen-merge", daemon=True)  # fmt: skip
        self._merging = (thread, (older, newer), result)
        thread.start()

    def _take_merged(self) -> None:
        """A merge the thread finished replaces its two runs (their files go after the commit)."""
        if self._merging is None or self._merging[0].is_alive():
            return
        thread, (older, newer), result = self._merging
        self._merging = None
        thread.join()
        if not result:
            return  # the merge failed (its error went to stderr): its runs stay as they are
        where = next(i for i, run in enumerate(self._runs) if run is older)
        assert self._runs[where + 1] is newer
        self._obsolete += self._names[where:where + 2]
        self._runs[where:where + 2] = [result[0][1]]
        self._names[where:where + 2] = [result[0][0]]

    def wait_for_merges(self) -> None:
        """Let a merge running in a thread finish (tests; the end of a crawl need not)."""
        if self._merging is not None:
            self._merging[0].join()
            self._take_merged()

    def _merge_into_file(self, a: np.ndarray, b: np.ndarray) -> tuple[str, np.ndarray]:
        """Merge two sorted runs (no common element) into a new file, a chunk at a time."""
        name = f"{next(self._ids):08d}{_SUFFIX}"
        path = self._path(name)
        out = np.lib.format.open_memmap(path + ".tmp", mode="w+", dtype=FINGERPRINT, shape=(len(a) + len(b),))
        i = j = k = 0
        while i < len(a) or j < len(b):
            pivot = _pivot(a, i, b, j)
            i2 = len(a) if pivot is None else int(np.searchsorted(a, pivot, "right"))
            j2 = len(b) if pivot is None else int(np.searchsorted(b, pivot, "right"))
            piece = np.concatenate((a[i:i2], b[j:j2]))
            piece.sort(kind="stable")
            out[k:k + len(piece)] = piece
            k += len(piece)
            i, j = i2, j2
        out.flush()
        del out
        self._finish_file(path)
        return name, self._open(name)

    def _write(self, run: np.ndarray) -> tuple[str, np.ndarray]:
        name = f"{next(self._ids):08d}{_SUFFIX}"
        path = self._path(name)
        with open(path + ".tmp", "wb") as file:
            np.lib.format.write_array(file, run, allow_pickle=False)
        self._finish_file(path)
        return name, self._open(name)

    def _finish_file(self, path: str) -> None:
        with open(path + ".tmp", "rb") as file:
            os.fsync(file.fileno())
        os.replace(path + ".tmp", path)
        fd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _open(self, name: str) -> np.ndarray:
        run = np.load(self._path(name), mmap_mode="r", allow_pickle=False)
        if run.dtype != FINGERPRINT or run.ndim != 1:
            raise ValueError(f"{name}: not a run of fingerprints")
        return run.view(np.ndarray)  # the same mapping, without np.memmap's cost per indexing

    def _path(self, name: str) -> str:
        assert self.folder is not None
        return os.path.join(self.folder, name)

    def _remove_strays(self, keep: set[str]) -> None:
        """Runs written after the last commit (a crash) are not part of the set."""
        if self.folder is None:
            return
        for name in os.listdir(self.folder):
            if (name.endswith(_SUFFIX) or name.endswith(_SUFFIX + ".tmp")) and name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self._path(name))


def _bloom_of(runs: list[np.ndarray], capacity: int) -> BlockedBloom:
    bloom = BlockedBloom(capacity)
    _fill(bloom, runs)
    return bloom


def _fill(bloom: BlockedBloom, runs: list[np.ndarray]) -> None:
    for run in runs:
        for start in range(0, len(run), MERGE_CHUNK):
            bloom.add(np.asarray(run[start:start + MERGE_CHUNK]))


class BlockedBloom:
    """A Bloom filter with each key's bits in one 64-bit word (one cache miss per
    key), BITS_PER_KEY bits per key of `capacity`: a false "maybe" for well under
    1 % of the keys not in it while it holds at most `capacity`."""

    BITS_PER_KEY = 16
    HASHES = 6  # bits set per key, 6 bits of the fingerprint each
    MIN_WORDS = 1 << 12

    def __init__(self, capacity: int) -> None:
        needed = max(capacity, 1) * self.BITS_PER_KEY // 64
        words = max(self.MIN_WORDS, 1 << max(0, needed - 1).bit_length())
        self.capacity = words * 64 // self.BITS_PER_KEY
        self.count = 0
        self._words = np.zeros(words, dtype=np.uint64)
        self._shift = np.uint64(64 - (words.bit_length() - 1))
        self._hash_shifts = np.arange(0, 6 * self.HASHES, 6, dtype=np.uint64)

    def _where(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each key's word, and its bits in that word (fingerprints are uniform:
        their own bits are the hashes)."""
        keys = keys.astype(np.uint64, copy=False)
        bits = (keys[:, None] >> self._hash_shifts) & np.uint64(63)  # HASHES slices of 6 bits
        masks = np.bitwise_or.reduce(np.uint64(1) << bits, axis=1)
        return (keys >> self._shift).astype(np.intp), masks

    def maybe(self, keys: np.ndarray) -> np.ndarray:
        """False where a key is certainly not in the filter."""
        where, masks = self._where(keys)
        return (self._words[where] & masks) == masks

    def add(self, keys: np.ndarray) -> bool:
        """Add keys; False once the filter holds more than its capacity (time to rebuild it larger)."""
        where, masks = self._where(keys)
        np.bitwise_or.at(self._words, where, masks)
        self.count += len(keys)
        return self.count <= self.capacity


def _members(run: np.ndarray, values: np.ndarray) -> np.ndarray:
    where = np.searchsorted(run, values)
    where[where == len(run)] = 0
    return run[where] == values if len(run) else np.zeros(len(values), dtype=bool)


def _pivot(a: np.ndarray, i: int, b: np.ndarray, j: int) -> np.uint64 | None:
    """The largest value of the next merge chunk, or None for the rest of both."""
    ends = [run[start + MERGE_CHUNK - 1] for run, start in ((a, i), (b, j))
            if start + MERGE_CHUNK <= len(run)]  # fmt: skip
    return min(ends) if ends else None


def _number(name: str) -> int:
    stem = name.removesuffix(_SUFFIX)
    return int(stem) if stem.isdigit() else 0


def as_fingerprints(data: bytes) -> np.ndarray:
    """The fingerprints of a LinkBatch (8 bytes each) as an array."""
    return np.frombuffer(data, dtype=FINGERPRINT)
