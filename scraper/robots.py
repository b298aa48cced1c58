"""robots.txt rules per origin (TEMPORARY shim: replaced by the RFC 9309 module)."""

from __future__ import annotations

import re

from protego import Protego

_TOKEN = re.compile(r"[A-Za-z_-]+")


def product_token(user_agent: str) -> str:
    match = _TOKEN.match(user_agent.strip())
    return match.group(0).lower() if match else "*"


class RobotsRules:
    def __init__(self, parser: Protego | None, token: str = "*", unavailable: bool = False) -> None:
        self._parser = parser
        self.token = token
        self.unavailable = unavailable

    @classmethod
    def allow_all(cls) -> RobotsRules:
        return cls(None)

    @classmethod
    def disallow_all(cls) -> RobotsRules:
        return cls(None, unavailable=True)

    @classmethod
    def parse(cls, body: bytes, token: str) -> RobotsRules:
        return cls(Protego.parse(body[:512000].decode("utf-8-sig", errors="replace")), token)

    def allowed(self, url: str) -> bool:
        if self.unavailable:
            return False
        return self._parser is None or self._parser.can_fetch(url, self.token)

    def crawl_delay(self) -> float:
        if self._parser is None:
            return 0.0
        delay = self._parser.crawl_delay(self.token)
        return float(delay) if delay else 0.0

    def sitemaps(self) -> list[str]:
        return [] if self._parser is None else list(self._parser.sitemaps)


def rules_from_response(status: int | None, body: bytes, token: str) -> RobotsRules:
    if status is None or status >= 500:
        return RobotsRules.disallow_all()
    if 200 <= status < 300:
        return RobotsRules.parse(body, token)
    return RobotsRules.allow_all()
