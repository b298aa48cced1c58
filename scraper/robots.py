"""robots.txt rules of one origin for one product token, as RFC 9309 and Google's
reference parser (google/robotstxt) read them. Pure: no network, no processes.

`rules_from_response` maps the answer (2xx parsed; 3xx, 4xx allow all; 5xx or
none disallow all). `RobotsRules.parse` decodes the first 500 KiB (cut after
the last line end before 512000 bytes; a whole or partial UTF-8 BOM skipped),
splits lines and groups them here as google/robotstxt does, and hands protego
(the only module that imports it) one `User-agent: *` group holding just the
rules for the token. protego does the matching: `*`, `$`, percent-encoding,
longest match, Allow on a tie, /robots.txt always allowed.

Done here because protego 0.7 alone gets it wrong (each a DEVIATION row in
tests/test_robots.py):
- a UTF-8 BOM before the first line loses the first group;
- an unknown line (`Foo: bar`, a typo), Crawl-delay, Request-rate or Visit-time
  between user-agent lines ends the group; here only Allow/Disallow lines do
  (RFC 9309 2.2.4, google ID_LineSyntax_Groups_OtherRules);
- a group applies when its user-agent's [a-zA-Z_-] prefix equals the token,
  case aside ("FooBot/1.0", "Foo Bar" name foobot, foo; "* x" is `*`), never
  as a substring: protego applies "User-agent: foo" to "foobot";
- "/" and "%2F" in the query compare equal (RFC 9309 2.2.2 table:
  "?baz=https://foo.bar" is "?baz=https%3A%2F%2Ffoo.bar"); protego keeps %2F apart.
- Crawl-delay (not in RFC 9309; Google ignores it) counts for the user-agent
  lines above it only: "User-agent: a / Crawl-delay: 5 / User-agent: b /
  Disallow: /x" is one group for the rules, but only a waits 5 s.

Left as protego does it (rare, and mostly on the cautious side):
- percent-encoding normalized on both sides: %7E = ~ and %62 = b (RFC table;
  Google compares as written), and a reserved character = its escape ("=" =
  %3D, "?" = %3F) except "/" = %2F in the path; invalid UTF-8 escapes
  all read as U+FFFD; a URL not percent-encoded is encoded first;
- a rule's length (longest match) is counted after that normalization;
- a pattern ending in "$" also matches a literal "$" there ("/a$" refuses "/a$b");
- "index.html" ending an Allow also allows its directory, not "index.htm"
  (Google does both); lines are not cut at Google's 16 KiB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from protego import Protego

MAX_BYTES = 512_000  # RFC 9309 2.5: parse at least 500 KiB

_BOM = b"\xef\xbb\xbf"
_TOKEN = re.compile(r"[A-Za-z_-]*")
_COMPATIBLE = re.compile(r"Mozilla/\S*\s*\(\s*compatible\s*;\s*([A-Za-z_-]+)", re.I)
_LINE_END = re.compile(r"\r\n|\r|\n")
_SLASH = re.compile(r"%2[fF]")
# str.splitlines (protego) also breaks lines here: encode them in a rule's value.
_BREAKS = {ord(c): "".join(f"%{b:02X}" for b in c.encode()) for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}

USER_AGENT, ALLOW, DISALLOW = "user-agent", "allow", "disallow"
SITEMAP, CRAWL_DELAY = "sitemap", "crawl-delay"
# Key prefixes and frequent typos, as google/robotstxt accepts them (plus crawl-delay).
_KEYS = (
    (("user-agent", "useragent", "user agent"), USER_AGENT),
    (("allow",), ALLOW),
    (("disallow", "dissallow", "dissalow", "disalow", "diasllow", "disallaw"), DISALLOW),
    (("sitemap", "site-map"), SITEMAP),
    (("crawl-delay", "crawl delay", "crawldelay"), CRAWL_DELAY),
)


def product_token(user_agent: str) -> str:
    """'FooBot/2.1 (+http://x)' -> 'foobot' (RFC 9309 2.2.1: [a-zA-Z_-]+, lower-cased).

    A Mozilla-compatible agent names its crawler after "compatible;", as RFC 9309
    2.2.1's own example does: 'Mozilla/5.0 (compatible; ExampleBot/0.1;
    https://www.example.com/bot.html)' -> 'examplebot' (not 'mozilla')."""
    compatible = _COMPATIBLE.match(user_agent.strip())
    return _prefix(compatible[1] if compatible else user_agent.strip())


@dataclass
class _Group:
    """User-agent lines and the rules after them, as RFC 9309 2.2 groups them."""

    agents: list[tuple[int, str]] = field(default_factory=list)  # (run, user-agent value)
    rules: list[tuple[str, str]] = field(default_factory=list)  # (ALLOW | DISALLOW, value)
    delays: list[tuple[int, str]] = field(default_factory=list)  # (run, Crawl-delay value)
    run: int = 0

    def add_agent(self, value: str) -> None:
        """A Crawl-delay line does not end the group, but it ends a run: it is
        for the user-agents above it ("User-agent: a / Crawl-delay: 5 /
        User-agent: b / Disallow: /x": both a and b refuse /x, only a waits 5 s)."""
        if self.delays and self.delays[-1][0] == self.run:
            self.run += 1
        self.agents.append((self.run, value))


class RobotsRules:
    """The rules of one origin, for one product token."""

    __slots__ = ("unavailable", "_parser", "_delay", "_sitemaps")

    def __init__(
        self,
        parser: Protego | None = None,
        delay: float = 0.0,
        sitemaps: list[str] | None = None,
        unavailable: bool = False,
    ) -> None:
        self.unavailable = unavailable
        self._parser = parser  # None: everything allowed
        self._delay = delay
        self._sitemaps = sitemaps or []

    @classmethod
    def allow_all(cls) -> RobotsRules:
        """No robots.txt (4xx, 3xx not followed), or --ignore-robots."""
        return cls()

    @classmethod
    def disallow_all(cls) -> RobotsRules:
        """5xx or no answer: complete disallow (RFC 9309 2.3.1.4); /robots.txt stays allowed."""
        return cls(Protego.parse("User-agent: *\nDisallow: /\n"), unavailable=True)

    @classmethod
    def parse(cls, body: bytes, token: str) -> RobotsRules:
        """The rules of a 2xx body (its first 500 KiB) that apply to `token`."""
        groups, sitemaps = _read(_decode(body))
        rules, delays = _select(groups, token.lower())
        parser = Protego.parse(_protego_text(rules, delays))
        delay = float(parser.crawl_delay("*") or 0.0)
        return cls(parser if rules else None, delay, sitemaps)

    def allowed(self, url: str) -> bool:
        """May the absolute URL, as it is put on the wire, be fetched?"""
        if self._parser is None:
            return True
        if "%2" in url:
            url = _query_slashes(url)
        return self._parser.can_fetch(url, "*")

    def crawl_delay(self) -> float:
        """Crawl-delay of the matched group(s), the last valid one; 0.0 when none."""
        return self._delay

    def sitemaps(self) -> list[str]:
        """Sitemap: values as written, from anywhere in the file."""
        return list(self._sitemaps)


def rules_from_response(status: int | None, body: bytes, token: str) -> RobotsRules:
    """None (no answer) or 5xx: disallow all; 2xx: parsed; anything else (3xx, 4xx): allow all."""
    if status is None or status >= 500:
        return RobotsRules.disallow_all()
    if 200 <= status < 300:
        return RobotsRules.parse(body, token)
    return RobotsRules.allow_all()


def _decode(body: bytes) -> str:
    """The first 500 KiB, cut after its last line end, without a (partial) BOM."""
    if len(body) > MAX_BYTES:
        end = max(body.rfind(b"\n", 0, MAX_BYTES), body.rfind(b"\r", 0, MAX_BYTES))
        body = body[: end + 1]
    skip = 0
    while skip < len(_BOM) and body[skip : skip + 1] == _BOM[skip : skip + 1]:
        skip += 1  # google/robotstxt skips a partial BOM too
    return body[skip:].decode("utf-8-sig", errors="replace")


def _records(text: str) -> Iterator[tuple[str | None, str]]:
    """(kind, value) of each line that reads as `key: value`; kind None when unknown."""
    for line in _LINE_END.split(text):
        key, sep, value = line.split("#", 1)[0].partition(":")
        if not sep:  # Google: "disallow /x" (exactly two words) for "disallow: /x"
            words = key.split()
            if len(words) != 2:
                continue
            key, value = words
        key = key.strip().lower()
        if key:
            yield next((kind for prefixes, kind in _KEYS if key.startswith(prefixes)), None), value.strip()


def _read(text: str) -> tuple[list[_Group], list[str]]:
    """Groups and sitemaps. Only an allow/disallow line closes the user-agent lines
    of a group: unknown lines, sitemap and crawl-delay do not (RFC 9309 2.2.4)."""
    groups: list[_Group] = []
    sitemaps: list[str] = []
    for kind, value in _records(text):
        if kind == SITEMAP:
            sitemaps.append(value)
        elif kind == USER_AGENT:
            if not groups or groups[-1].rules:
                groups.append(_Group())
            groups[-1].add_agent(value)
        elif not groups or kind is None:  # before any user-agent, or unknown: ignored
            continue
        elif kind == CRAWL_DELAY:
            groups[-1].delays.append((groups[-1].run, value))
        else:
            groups[-1].rules.append((kind, value))
    return groups, sitemaps


def _names(agent: str, token: str) -> bool:
    """A user-agent value names the token: its [a-zA-Z_-] prefix, case aside (Google)."""
    return bool(token) and _prefix(agent) == token


def _prefix(value: str) -> str:
    """The leading [a-zA-Z_-] characters, lower-cased."""
    match = _TOKEN.match(value)
    return match[0].lower() if match else ""


def _is_star(agent: str) -> bool:
    return agent == "*" or (agent[:1] == "*" and agent[1:2].isspace())


def _select(groups: list[_Group], token: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Rules and crawl-delays of the groups naming the token, merged; else of the `*` groups."""
    chosen = _matching(groups, lambda agent: _names(agent, token)) or _matching(groups, _is_star)
    rules = [(kind, value) for group, _ in chosen for kind, value in group.rules if value]
    delays = [value for group, runs in chosen for run, value in group.delays if run in runs]
    return rules, delays


def _matching(groups: list[_Group], match: Callable[[str], bool]) -> list[tuple[_Group, set[int]]]:
    """The groups with a user-agent that `match`es, with the runs it is in."""
    found = []
    for group in groups:
        runs = {run for run, agent in group.agents if match(agent)}
        if runs:
            found.append((group, runs))
    return found


def _protego_text(rules: list[tuple[str, str]], delays: list[str]) -> str:
    """One `User-agent: *` group that protego reads the way it was meant."""
    lines = ["User-agent: *"] + [f"{CRAWL_DELAY}: {value}" for value in delays]
    lines += [f"{kind}: {_query_slashes(value.translate(_BREAKS))}" for kind, value in rules]
    return "\n".join(lines) + "\n"


def _query_slashes(path: str) -> str:
    """'%2F' in the query as '/' (RFC 9309 2.2.2: reserved octets compare encoded)."""
    head, sep, query = path.partition("?")
    return f"{head}?{_SLASH.sub('/', query)}" if sep and "%2" in query else path
