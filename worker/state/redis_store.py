"""The shared state store on Redis, for fleets that span several hosts.

Layout under the deployment's namespace `ns` (deployments sharing a Redis never collide):
- `ns:d:<key>`  a hash {v: version, d: JSON document}
- `ns:i:<name>` a sorted set (an index)
- `ns:c:<key>`  a string holding a counter (INCRBYFLOAT)
- `ns:seq`      the version sequence: every stored document takes the next number, so a document
                deleted (or expired) and created again never reuses a version a stale reader holds.

A write is one Lua script (version check, set or delete, TTL, index ops), atomic without WATCH
retries. Scripts do not roll back on error, so every argument a script could choke on is checked
in Python first. redis-py retries are off: a retried CAS or INCRBYFLOAT whose first attempt did
land would be misreported or applied twice; callers get StateStoreError and decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from worker.state._args import check_index_ops, check_ttl, check_write_args, dump_document, load_document
from worker.state.base import IndexOp, StateStoreError, Versioned, Write

SOCKET_TIMEOUT_SECONDS: Final = 5.0
CONNECT_TIMEOUT_SECONDS: Final = 2.0
HEALTH_CHECK_INTERVAL_SECONDS: Final = 30

_WRITE_SCRIPT: Final = """
local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local expect = tonumber(ARGV[1])
if expect ~= -1 and current ~= expect then
  return -1
end
local new_version = 0
if ARGV[2] == '1' then
  new_version = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[1], 'v', new_version, 'd', ARGV[3])
  if ARGV[4] == '' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
  end
else
  redis.call('DEL', KEYS[1])
end
for i = 3, #KEYS do
  local member = ARGV[2 * i - 1]
  local score = ARGV[2 * i]
  if score == '' then
    redis.call('ZREM', KEYS[i], member)
  else
    redis.call('ZADD', KEYS[i], score, member)
  end
end
return new_version
"""

_INCR_SCRIPT: Final = """
local value = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

_WANTED_PERSISTENCE: Final = (
    ("appendonly", ("yes",), "appendonly is {value!r}, not 'yes': a Redis restart loses the state"),
    (
        "appendfsync",
        ("everysec", "always"),
        "appendfsync is {value!r}, not 'everysec' or 'always': a crash may lose recent writes",
    ),
    (
        "maxmemory-policy",
        ("noeviction",),
        "maxmemory-policy is {value!r}, not 'noeviction': Redis may evict state under memory pressure",
    ),
)


def mask_url(url: str) -> str:
    """`url` with any password (in the authority or a `password=` query item) replaced by ***."""
    parts = urlsplit(url)
    masked = url
    if parts.password is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        user = userinfo.split(":", 1)[0]
        masked = masked.replace(f"{userinfo}@", f"{user}:***@", 1)
    if parts.query:
        items = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in items], safe="*")
        masked = masked.replace(f"?{parts.query}", f"?{query}", 1)
    return masked


def _ms(seconds: float | None) -> str:
    """A TTL as whole milliseconds for PEXPIRE ('' for none); never 0, which would delete at once."""
    return "" if seconds is None else str(max(1, math.ceil(seconds * 1000)))


def _score(score: float) -> str:
    if math.isinf(score):
        return "+inf" if score > 0 else "-inf"
    return repr(score)


class RedisStateStore:
    """`StateStore` on Redis; every key lives under `namespace`."""

    def __init__(self, url: str, namespace: str) -> None:
        if not namespace:
            raise ValueError("a Redis state store needs a non-empty namespace")
        self._url = url
        self._namespace = namespace
        self._client: redis.Redis | None = None
        self._write_script: Script | None = None
        self._incr_script: Script | None = None
        raw = [urlsplit(url).password, _query_password(url)]
        self._secrets = sorted({form for s in raw if s for form in (s, unquote(s))}, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"RedisStateStore({self.describe()!r})"

    @property
    def namespace(self) -> str:
        """The prefix of every key this store touches."""
        return self._namespace

    # --- plumbing ----------------------------------------------------------------------------

    def _redis(self) -> redis.Redis:
        """The client, created on first use (redis-py's pool reconnects after a fork by itself)."""
        if self._client is None:
            try:
                self._client = redis.Redis.from_url(
                    self._url,
                    decode_responses=True,
                    socket_timeout=SOCKET_TIMEOUT_SECONDS,
                    socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    health_check_interval=HEALTH_CHECK_INTERVAL_SECONDS,
                    retry=Retry(NoBackoff(), 0),
                )
            except ValueError as exc:
                raise StateStoreError(f"bad Redis URL {self.describe()}: {self._scrub(str(exc))}") from None
            self._write_script = self._client.register_script(_WRITE_SCRIPT)
            self._incr_script = self._client.register_script(_INCR_SCRIPT)
        return self._client

    @contextmanager
    def _guard(self) -> Iterator[redis.Redis]:
        """The client, with Redis errors turned into StateStoreError (and no password in the text)."""
        client = self._redis()
        try:
            yield client
        except redis.RedisError as exc:
            detail = self._scrub(f"{type(exc).__name__}: {exc}")
            raise StateStoreError(f"state store {self.describe()}: {detail}") from None

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _doc_key(self, key: str) -> str:
        return f"{self._namespace}:d:{key}"

    def _index_key(self, index: str) -> str:
        return f"{self._namespace}:i:{index}"

    def _counter_key(self, key: str) -> str:
        return f"{self._namespace}:c:{key}"

    # --- documents ---------------------------------------------------------------------------

    def get(self, key: str) -> Versioned | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[Versioned | None]:
        if not keys:
            return []
        with self._guard() as client:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._doc_key(key), ["v", "d"])
            rows: list[list[str | None]] = pipe.execute()
        return [None if v is None or d is None else Versioned(load_document(d), int(v)) for v, d in rows]

    def write(
        self,
        key: str,
        value: dict[str, Any] | None,
        *,
        expect_version: int,
        ttl_seconds: float | None = None,
        index_ops: Sequence[IndexOp] = (),
    ) -> int | None:
        check_write_args(value, expect_version, ttl_seconds)
        check_index_ops(index_ops)
        keys = [self._doc_key(key), f"{self._namespace}:seq"]
        args: list[str] = [
            str(expect_version),
            "0" if value is None else "1",
            "" if value is None else dump_document(value),
            _ms(ttl_seconds),
        ]
        for op in index_ops:
            keys.append(self._index_key(op.index))
            args += [op.member, "" if op.score is None else _score(op.score)]
        with self._guard():
            assert self._write_script is not None
            result = int(self._write_script(keys=keys, args=args))
        return None if result < 0 else result

    def write_many(self, writes: Sequence[Write]) -> list[int | None]:
        """One script call per write: Redis serves each in microseconds, without a lock to queue on."""
        return [
            self.write(
                w.key, w.value, expect_version=w.expect_version, ttl_seconds=w.ttl_seconds, index_ops=w.index_ops
            )
            for w in writes
        ]

    # --- indexes -----------------------------------------------------------------------------

    def index_range(
        self, index: str, *, max_score: float, limit: int, min_score: float = float("-inf")
    ) -> list[tuple[str, float]]:
        if limit <= 0:  # Redis reads LIMIT 0 -1 as "no limit"
            return []
        with self._guard() as client:
            rows = client.zrangebyscore(
                self._index_key(index), _score(min_score), _score(max_score), 0, limit, withscores=True
            )
        return [(str(member), float(score)) for member, score in cast(list[tuple[str, float]], rows)]

    def index_count(self, index: str, *, max_score: float = float("inf")) -> int:
        with self._guard() as client:
            return int(client.zcount(self._index_key(index), "-inf", _score(max_score)))

    # --- counters ----------------------------------------------------------------------------

    def incr(self, key: str, amount: float = 1.0, *, ttl_seconds: float | None = None) -> float:
        check_ttl(ttl_seconds)
        if not math.isfinite(amount):
            raise ValueError(f"a counter increment must be finite, got {amount!r}")
        with self._guard():
            assert self._incr_script is not None
            value = self._incr_script(keys=[self._counter_key(key)], args=[repr(amount), _ms(ttl_seconds)])
        return float(value)

    def read_counter(self, key: str) -> float:
        with self._guard() as client:
            value = client.get(self._counter_key(key))
        return 0.0 if value is None else float(value)

    def delete_counter(self, key: str) -> None:
        with self._guard() as client:
            client.delete(self._counter_key(key))

    # --- housekeeping ------------------------------------------------------------------------

    def persistence_warnings(self) -> list[str]:
        """Sentences for each Redis setting that puts the state at risk (empty when all is well)."""
        warnings: list[str] = []
        config: dict[str, str] = {}
        with self._guard() as client:
            try:
                for name, _, _ in _WANTED_PERSISTENCE:
                    config.update(cast(dict[str, str], client.config_get(name)))
            except redis.ResponseError as exc:
                reason = self._scrub(str(exc))
                return [f"could not check the Redis persistence settings (CONFIG GET refused: {reason})"]
        for name, accepted, sentence in _WANTED_PERSISTENCE:
            value = config.get(name)
            if value is None:
                warnings.append(f"could not check Redis setting {name!r}: CONFIG GET returned nothing")
            elif value.lower() not in accepted:
                warnings.append(f"Redis {sentence.format(value=value)}")
        return warnings

    def ping(self) -> None:
        with self._guard() as client:
            client.ping()

    def describe(self) -> str:
        return f"{mask_url(self._url)} (namespace {self._namespace!r})"

    def close(self) -> None:
        client, self._client = self._client, None
        self._write_script = self._incr_script = None
        if client is not None:
            client.close()


def _query_password(url: str) -> str | None:
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name.lower() == "password":
            return value
    return None
