"""What the members' routes need from the running service, put on `app.state` when it is
built: the link signer, the mailer, and the client that talks to identity providers."""

from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request

from services.common import targets
from services.common.runtime import ServiceRuntime
from services.ingest.members.links import LinkSigner
from services.ingest.members.mail import Mailer
from services.ingest.members.oidc import OidcClient
from services.ingest.settings import IngestSettings


def install(app: FastAPI, runtime: ServiceRuntime, *, settings: IngestSettings) -> None:
    app.state.link_signer = LinkSigner.from_settings(settings.member_link_key, settings.receipt_signing_key)
    app.state.mailer = Mailer(settings)
    # Identity providers are reached directly, never through a redirect (a discovery document
    # or a key set must come from the address configured).
    http = httpx.AsyncClient(timeout=settings.oidc_timeout_s, follow_redirects=False)
    app.state.identity_providers = OidcClient(http=http, cache_s=settings.oidc_cache_s, guard=targets.Guard.of(
        targets.Purpose.IDENTITY_PROVIDERS, settings.oidc_allowed_networks))
    runtime.shutdown_hooks.append(http.aclose)


async def get_link_signer(request: Request) -> LinkSigner:
    signer: LinkSigner = request.app.state.link_signer
    return signer


async def get_mailer(request: Request) -> Mailer:
    mailer: Mailer = request.app.state.mailer
    return mailer


async def get_identity_providers(request: Request) -> OidcClient:
    providers: OidcClient = request.app.state.identity_providers
    return providers


Signer = Annotated[LinkSigner, Depends(get_link_signer)]
Mail = Annotated[Mailer, Depends(get_mailer)]
IdentityProviders = Annotated[OidcClient, Depends(get_identity_providers)]
