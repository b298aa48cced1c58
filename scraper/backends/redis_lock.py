"""The coordinator's lock, and the one way it writes a crawl's keys (SPEC 8, issue 21).

Only the coordinator that holds `scraper:<id>:lock` may touch the crawl's keys:
a second coordinator started by mistake, or a --resume started while the old
lock lives, is refused and must leave Redis exactly as it found it; and a
coordinator whose lock went to a newer one must stop without deleting what the
newer one runs on. So every write runs in a Lua script that first checks that
the lock is still ours (a script is atomic: no other client runs in between),
and fails with LOCKLOST otherwise.

The lock's renewal also renews the TTL of every key of the crawl: a crawl
whose coordinator died goes away by itself after STATE_TTL, instead of
staying in Redis and in `scraper status` for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ScraperError
from .streams import GROUP, Keys

LOCK_TTL = 3.0  # seconds the coordinator's lock outlives it (a --resume after a kill waits this)
STATE_TTL = 600  # seconds a crawl's keys outlive its coordinator's last renewal, or its end
LOST = "LOCKLOST"  # the error the scripts answer when the lock is another's
# A lock that is missing (Redis restarted without persistence) is no one's: the
# scripts of the coordinator that held it take it again and go on.

# ARGV: our name, then commands, each as its length followed by its words.
GUARDED = """
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', LOCK_MS)
elseif holder ~= ARGV[1] then return redis.error_reply('LOCKLOST ' .. tostring(holder)) end
local out, i = {}, 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  out[#out + 1] = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return out
""".replace("LOCK_MS", str(int(LOCK_TTL * 1000)))

# KEYS: the lock, then the keys whose TTL is renewed with it. ARGV: our name, lock ms, keys s.
# Answers 1 (renewed), nil (no lock: expired, or Redis lost it) or the holder's name.
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then return holder end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

# Every task a consumer holds, taken away from it in one step: read, acknowledged,
# deleted, and the consumer removed. One step, so that no entry can leave the
# pending list between the look and the removal (XGROUP DELCONSUMER drops the
# entries it still holds). KEYS: lock, stream. ARGV: our name, group, consumer.
TAKE_OVER = """
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', LOCK_MS)
elseif holder ~= ARGV[1] then return redis.error_reply('LOCKLOST ' .. tostring(holder)) end
local stream, group, consumer = KEYS[2], ARGV[2], ARGV[3]
local messages = {}
for _, entry in ipairs(redis.call('XPENDING', stream, group, '-', '+', 1000000, consumer)) do
  local id = entry[1]
  local found = redis.call('XRANGE', stream, id, id)
  if found[1] then
    local fields = found[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'm' then messages[#messages + 1] = fields[i + 1] end
    end
  end
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
end
redis.call('XGROUP', 'DELCONSUMER', stream, group, consumer)
return messages
""".replace("LOCK_MS", str(int(LOCK_TTL * 1000)))


class LockLost(ScraperError):
    """A newer coordinator holds this crawl's lock: this one stops, deleting nothing."""


class Lock:
    """The lock of one crawl, held by `me`, and the writes that check it."""

    def __init__(self, keys: Keys, me: str) -> None:
        self.keys = keys
        self.me = me
        self.held = False  # taken by this coordinator, and not lost since

    def take(self, client: Any) -> bool:
        """Take the lock if no one holds it; whether taken."""
        self.held = bool(client.set(self.keys.lock, self.me, nx=True, px=int(LOCK_TTL * 1000)))
        return self.held

    def renew(self, client: Any) -> bool:
        """Renew the lock and the TTL of the crawl's keys; False when the lock is gone
        (expired, or Redis lost it); LockLost when another coordinator holds it."""
        k = self.keys
        ttl_keys = (k.state, k.spec, k.wanted, k.stats, k.tasks, k.isolated, k.results, k.workers)
        reply = client.eval(RENEW, 1 + len(ttl_keys), k.lock, *ttl_keys, self.me, int(LOCK_TTL * 1000),
                            STATE_TTL)  # fmt: skip
        if reply == 1:
            return True
        if reply is None:
            return False
        raise self.lost(reply)

    def write(self, target: Any, *commands: Sequence[Any]) -> Any:
        """Run `commands` on `target` (a client, or a pipeline that queues them) if the
        lock is ours; Redis answers LOCKLOST (see `lost`) otherwise."""
        args: list[Any] = [self.me]
        for command in commands:
            args += [len(command), *command]
        return target.eval(GUARDED, 1, self.keys.lock, *args)

    def take_over(self, target: Any, stream: str, consumer: str) -> Any:
        """Every task message `consumer` holds in `stream`, taken from it (TAKE_OVER)."""
        return target.eval(TAKE_OVER, 2, self.keys.lock, stream, self.me, GROUP, consumer)

    def lost(self, holder: Any) -> LockLost:
        """The error of a write refused: the lock went to `holder`."""
        self.held = False
        name = holder.decode(errors="replace") if isinstance(holder, bytes) else str(holder)
        name = name.removeprefix(LOST).strip() or "?"
        return LockLost(f"crawl {self.keys.crawl_id!r} was taken over by coordinator {name}: this one "
                        "stops and leaves the crawl's keys to it")  # fmt: skip
