"""How a request's credentials are checked, the kernel's half of keys and sessions (accounts/
issues and revokes keys, members/ opens, lists and ends sessions): an API key is looked up by
its hash. For a console session the browser holds two cookies, the session's token (HttpOnly, so
no script can read it) and a CSRF token that the console's script reads and echoes in
`X-CSRF-Token` on every request that changes something. A change is accepted only with the
session's own CSRF token (its hash is kept beside the session's) and, when the browser names
the page's origin, from this origin: a page elsewhere can make the browser send the cookies,
never read or echo the token."""

import hashlib
import hmac

from fastapi import Request

from services.common.problems import Problem

# `__Host-`: the browser keeps them only when Secure, for this host alone, for every path.
SESSION_COOKIE = "__Host-genline-session"
CSRF_COOKIE = "__Host-genline-csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def hash_api_key(key: str) -> str:
    """What the database keeps of an API key: keys are 256 random bits, so one SHA-256 is
    enough, there is nothing to brute-force."""
    return hashlib.sha256(key.encode()).hexdigest()


def digest(token: str) -> str:
    """What the database keeps of a token (tokens are 192 random bits: one SHA-256 is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


def own_origin(request: Request, public_url: str | None) -> str:
    base = public_url or str(request.base_url)
    scheme, _, rest = base.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def check_csrf(request: Request, csrf_hash: str, *, public_url: str | None) -> None:
    """Refuse (403) a change sent with the session's cookie but without its CSRF token, or
    from a page of another origin."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request, public_url):
        raise Problem(status=403, slug="csrf-refused", detail=f"a change to this session's account cannot come from {origin[:100]!r}")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(digest(sent), csrf_hash):
        raise Problem(status=403, slug="csrf-refused", detail=f"a change made with a session must carry its {CSRF_HEADER} header"
                      " (the console sends it)")
