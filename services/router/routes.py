"""The route providers call back on: `POST /webhooks/providers/{provider}`.

A provider configured with `webhooks` is told to call `{webhooks.url}/{provider}`; the
operator points that public URL at this route. The provider's adapter verifies the
signature and names the remote job, whose poller then polls at once (`WebhookInbox`).
One small mountable route, so it can move to another listener without touching the rest.
Answers: 204 taken; 401 a signature that does not verify; 404 no such provider with
callbacks; 413 a body over 8 MiB. Errors are problem details (RFC 9457).

A callback comes at the size the provider sends it: Replicate posts the whole training or
prediction, its input echoed and its logs so far (a training's progress line at each of up
to 6,000 steps, some 600 KB; more with a model's own logging), so the bound is well above
that, and a body is read only up to it. Its signature is checked over the bytes before a
byte of it is parsed.
"""

import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.providers.remote import RemoteProvider
from services.router.providers.webhooks import WebhookInbox, WebhookRejected

log = logging.getLogger(__name__)
MAX_BODY = 8 << 20


def provider_webhook_route(providers: Mapping[str, object], inbox: WebhookInbox) -> Route:
    async def receive(request: Request) -> Response:
        name = request.path_params["provider"]
        provider = providers.get(name)
        if not isinstance(provider, RemoteProvider) or provider.config.webhooks is None:
            return _problem(request, 404, detail=f"no provider {name!r} takes callbacks here")
        body = await _bounded_body(request)
        if body is None:
            return _problem(request, 413, detail=f"a callback is at most {MAX_BODY} bytes")
        try:
            remote_id = await provider.verify_webhook(request.headers, body)
        except WebhookRejected as error:
            log.warning("callback for provider %s refused: %s", name, error)
            return _problem(request, 401, detail=f"the callback is not signed by {name}: {error}")
        inbox.notify(name, remote_id)
        return Response(status_code=204)

    return Route("/webhooks/providers/{provider}", receive, methods=["POST"])


async def _bounded_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None  # refused before it is read
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_TITLES = {401: "Unauthorized", 404: "Not found", 413: "Content too large"}


def _problem(request: Request, status: int, *, detail: str) -> JSONResponse:
    title = _TITLES[status]
    slug = title.lower().replace(" ", "-")  # "Not found": /problems/not-found
    return JSONResponse({"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail,
                         "instance": request.url.path}, status_code=status, media_type="application/problem+json")
