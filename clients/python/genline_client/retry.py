"""When to try a request again, and how long to wait first.

A request is retried when the API could not be reached or the connection broke, on 429
and on 5xx: every call the client makes is safe to repeat (reads, cancel, and job
creation, which carries one Idempotency-Key for all its tries). The wait is exponential
backoff with full jitter, but never shorter than the API's `Retry-After`; a `Retry-After`
longer than `max_retry_after_s` is not waited for: the caller gets `RateLimited` at once.
"""

import random
from dataclasses import dataclass

import httpx

from genline_client.errors import retry_after

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 20.0
    max_retry_after_s: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base·2ⁿ)]."""
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))

    def after_error(self, attempt: int) -> float | None:
        """Seconds to wait before try `attempt + 1` after a transport error, or None to give up."""
        return self.backoff(attempt) if attempt < self.max_retries else None

    def after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again after this answer, or None to keep it."""
        if response.status_code not in RETRYABLE_STATUSES or attempt >= self.max_retries:
            return None
        asked = retry_after(response)
        if asked is None:
            return self.backoff(attempt)
        return max(asked, self.backoff(attempt)) if asked <= self.max_retry_after_s else None


NO_RETRIES = RetryPolicy(max_retries=0)
