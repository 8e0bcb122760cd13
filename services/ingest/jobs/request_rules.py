"""Pure rules a submission applies to its request: the candidates it plans, the deadline a
`Cancel-After` header gives, and the fingerprint an `Idempotency-Key` is bound to."""

import hashlib
import json
import math
import re
from typing import Any


def plan_candidates(images: int, candidates: int | None, *, oversample: float) -> int:
    """N defaults to K × oversample, and always at least one spare candidate."""
    return candidates if candidates is not None else max(images + 1, math.ceil(images * oversample))


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """Seconds in a `Cancel-After` value: `90`, `90s`, `5m`, `1h30m` (Replicate's form)."""
    text = text.strip()
    if text.isdigit():
        seconds = int(text)
    elif (match := _DURATION.fullmatch(text)) and any(match.groups()):
        hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"Cancel-After {text!r} is not a duration like 90, 90s, 5m or 1h30m")
    if not 1 <= seconds <= 7 * 24 * 3600:
        raise ValueError(f"Cancel-After {text!r} must be between 1 second and 7 days")
    return seconds


def request_fingerprint(request: dict[str, Any]) -> str:
    """The parsed request, keys sorted: the same JSON spaced or ordered otherwise is the same request."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
