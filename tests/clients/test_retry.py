"""When the client tries again, and how long it waits (pure policy)."""

import httpx
import pytest

from genline_client.errors import RateLimited, ServerError, raise_for_problem
from genline_client.retry import RetryPolicy


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://api/v1/jobs"))


def test_retry_after_is_a_floor_on_the_backoff():
    policy = RetryPolicy(backoff_s=0.01, max_backoff_s=0.02)
    assert policy.after_response(0, answer(429, **{"Retry-After": "3"})) == 3
    assert policy.after_response(0, answer(503, **{"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"})) <= 0.02


def test_client_errors_and_successes_are_kept_and_retries_are_bounded():
    policy = RetryPolicy(max_retries=2)
    assert policy.after_response(0, answer(404)) is None
    assert policy.after_response(0, answer(200)) is None
    assert policy.after_response(1, answer(502)) is not None
    assert policy.after_response(2, answer(502)) is None
    assert policy.after_error(2) is None


def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    assert RetryPolicy(max_retry_after_s=60).after_response(0, answer(429, **{"Retry-After": "3600"})) is None


def test_a_429_carries_retry_after_from_the_header_and_a_5xx_without_a_problem_body_still_maps():
    with pytest.raises(RateLimited) as limited:
        raise_for_problem(answer(429, **{"Retry-After": "7"}))
    assert limited.value.retry_after == 7
    with pytest.raises(ServerError) as failed:
        raise_for_problem(httpx.Response(502, text="<html>bad gateway</html>",
                                         request=httpx.Request("GET", "http://api/")))
    assert failed.value.status == 502 and "bad gateway" in failed.value.detail
