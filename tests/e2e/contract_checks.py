"""A check schemathesis adds to its own in the contract test (loaded through SCHEMATHESIS_HOOKS)."""

import json

import schemathesis

# The OpenAI-compatible paths answer errors in OpenAI's shape, which its clients read.
OPENAI_PATHS = ("/v1/images/", "/v1/files", "/v1/batches")


def openai_error(body: bytes) -> bool:
    error = json.loads(body or b"{}").get("error")
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= error.keys()


@schemathesis.check
def errors_are_problems(ctx, response, case) -> None:
    """Every error is an RFC 9457 problem, whatever the document says; on the OpenAI-compatible
    paths, an OpenAI error."""
    if response.status_code >= 400:
        media_type = (response.headers.get("content-type") or ["(none)"])[0]
        if case.path.startswith(OPENAI_PATHS):
            if media_type != "application/json" or not openai_error(response.content):
                raise AssertionError(f"{response.status_code} on {case.path} is not an OpenAI error: {media_type}")
        elif media_type != "application/problem+json":
            raise AssertionError(f"{response.status_code} answered as {media_type}, not application/problem+json")
