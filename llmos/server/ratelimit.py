"""Per-key rate limits: a token bucket per key, kept in this process.

Each worker process has its own buckets, so with `--workers N` a key may get up to N times the
rate; a limit shared by several processes or machines would need a shared store (Redis...).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """`per_minute` requests per minute, with bursts up to `burst`. per_minute=0 allows everything."""

    per_minute: float
    burst: int
    clock: object = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """Take one request from key's bucket: 0.0 when allowed, else seconds until one is."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()  # type: ignore[operator]
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds: round up, so that a client waiting that long gets through."""
    return str(max(1, math.ceil(seconds)))
