"""A check schemathesis adds to its own in the contract test (loaded through SCHEMATHESIS_HOOKS)."""

import schemathesis


@schemathesis.check
def errors_are_problems(ctx, response, case) -> None:
    """Every error is an RFC 9457 problem, whatever the document says."""
    if response.status_code >= 400:
        media_type = (response.headers.get("content-type") or ["(none)"])[0]
        if media_type != "application/problem+json":
            raise AssertionError(f"{response.status_code} answered as {media_type}, not application/problem+json")
