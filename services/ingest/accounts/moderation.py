"""The optional hosted moderation adapter: a prompt sent to an OpenAI-style moderation
endpoint (`POST {url}` with `{"model", "input"}`, answered `{"results": [{"flagged",
"categories"}]}`), behind a circuit breaker, so a provider that is down is not waited on for
every submission. Down (an error, a timeout, an open breaker) is `ModerationUnavailable`;
the tenant's policy then decides (fail open: the job goes on; fail closed: 503)."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


class ModerationUnavailable(Exception):
    """The moderation provider did not answer usably, or its breaker is open."""


@dataclass(kw_only=True)
class Breaker:
    """Open after `failures` failures in a row, for `cooldown_s`; then one call may try again."""

    failures: int
    cooldown_s: float
    failed: int = 0
    opened_at: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic)

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        return self.clock() - self.opened_at >= self.cooldown_s

    def succeeded(self) -> None:
        self.failed, self.opened_at = 0, None

    def failed_once(self) -> None:
        self.failed += 1
        if self.failed >= self.failures:
            self.opened_at = self.clock()


def flagged_category(answer: dict[str, Any]) -> str | None:
    """The first category a flagged result names (`violence`, `sexual/minors`, …); None when
    nothing is flagged. A flagged result without a category true is `flagged`."""
    results = answer.get("results")
    if not isinstance(results, list) or not results:
        raise ModerationUnavailable("the moderation answer has no results")
    for result in results:
        if result.get("flagged"):
            categories = result.get("categories") or {}
            return next((name for name, flagged in categories.items() if flagged is True), "flagged")
    return None


@dataclass(frozen=True, kw_only=True)
class HostedModeration:
    """The hosted moderation provider: its client, endpoint, API key (None: none sent), model,
    the time an answer may take, and the breaker that stops asking while it fails."""

    http: httpx.AsyncClient
    url: str
    api_key: str | None = field(repr=False)
    model: str
    timeout_s: float
    breaker: Breaker

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def category_of(self, prompt: str) -> str | None:
        if not self.breaker.allows():
            raise ModerationUnavailable("the moderation provider's breaker is open")
        try:
            response = await self.http.post(self.url, json={"model": self.model, "input": prompt},
                                            headers=self.headers, timeout=self.timeout_s)
            response.raise_for_status()
            category = flagged_category(response.json())
        except (httpx.HTTPError, ValueError, ModerationUnavailable) as error:
            self.breaker.failed_once()
            raise ModerationUnavailable(str(error) or type(error).__name__) from None
        self.breaker.succeeded()
        return category
