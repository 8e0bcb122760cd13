"""Reading HTTP headers the services' clients act on.

One parser per header for every service; the Python client (clients/python) keeps its own
copy of `retry_after_s`, because it ships alone and cannot import the services.
"""

import email.utils
import time

import httpx


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
