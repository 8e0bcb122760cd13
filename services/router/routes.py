"""The route providers call back on: `POST /webhooks/providers/{provider}`.

A provider configured with `webhooks` is told to call `{webhooks.url}/{provider}`; the
operator points that public URL at this route. The provider's adapter verifies the
signature and names the remote job, whose poller then polls at once (`WebhookInbox`).
One small mountable route, so it can move to another listener without touching the rest.
Answers: 204 taken; 401 a signature that does not verify; 404 no such provider with
callbacks; 413 a body over 1 MiB. Errors are problem details (RFC 9457).
"""

import logging
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.router.providers.remote import RemoteProvider
from services.router.providers.webhooks import WebhookInbox, WebhookRejected

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


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
