"""Rate limits for the dispatcher. The sliding window itself is pure and lives in
``hoga.domain.ratelimit`` so broker adapters (which may import only the domain) share it."""

from hoga.domain.ratelimit import RateLimit, SlidingWindow, acquire_all, available_at

__all__ = ["RateLimit", "SlidingWindow", "acquire_all", "available_at"]
