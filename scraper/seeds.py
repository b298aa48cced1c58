"""Pure seed-file parsing: one URL per line, with reported problems."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .urls import canonicalize, is_http_url


@dataclass(frozen=True)
class SeedProblem:
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


def parse_seeds(lines: Iterable[str]) -> tuple[list[str], list[SeedProblem]]:
    """Canonical seed URLs in file order without duplicates, and the bad lines.

    Whitespace is stripped; blank lines and `#` comments are ignored.
    """
    seeds: list[str] = []
    seen: set[str] = set()
    problems: list[SeedProblem] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if not is_http_url(text):
            problems.append(SeedProblem(number, text, "not an absolute http(s) URL"))
            continue
        try:
            url = canonicalize(text)
        except ValueError as exc:
            problems.append(SeedProblem(number, text, f"invalid URL ({exc})"))
            continue
        if url not in seen:
            seen.add(url)
            seeds.append(url)
    return seeds, problems
