"""The ingest service: Genline's public HTTP API and the job read model behind it."""

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any

import grpc
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from services.common import api, problems, telemetry, tracing
from services.common.internal_calls import ServiceAuth, identity_client_interceptor, signer_of, verifier_of
from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore
from services.ingest import ledger_calls
from services.ingest.accounts import Breaker, HostedModeration, PromptGate
from services.ingest.accounts.routes import keys as key_routes
from services.ingest.accounts.routes import prompt_screening
from services.ingest.admin.routes import operations as admin
from services.ingest.admin.routes import platform as admin_platform
from services.ingest.admin.routes import tenants as admin_tenants
from services.ingest.batches.routes import batches
from services.ingest.batches.routes import files as batch_files
from services.ingest.batches.runner import BatchRunner
from services.ingest.billing.routes import account, alerts, usage
from services.ingest.billing.routes import credits as billing
from services.ingest.compat import errors as openai_errors
from services.ingest.compat import routes as openai_images
from services.ingest.compat.models import load_models
from services.ingest.console import routes as console
from services.ingest.evaluations import routes as evaluations
from services.ingest.evaluations.runner import EvaluationRunner
from services.ingest.inputs import routes as uploads
from services.ingest.inputs.screening import ScreeningGate
from services.ingest.jobs import handlers
from services.ingest.jobs.live import LogWatch
from services.ingest.jobs.routes import candidates, jobs, templates
from services.ingest.jobs.sweeper import Sweeper
from services.ingest.members import wiring as member_wiring
from services.ingest.members.routes import admin as admin_members
from services.ingest.members.routes import members, sign_in, sso
from services.ingest.plans import load_plans
from services.ingest.receipts.document import ReceiptSigner
from services.ingest.receipts.issuing import record_signing_key
from services.ingest.receipts.routes import provenance, receipts
from services.ingest.routes import (
    audit,
    documentation,
    internal,
    root,
)
from services.ingest.settings import IngestSettings
from services.ingest.signing_key import load_signing_key
from services.ingest.subjects import routes as subjects
from services.ingest.subjects.lifecycle import SubjectRetentionSweeper, Subjects
from services.ingest.webhooks.routes import events, webhooks

log = logging.getLogger(__name__)

DESCRIPTION = """Ask for K good images: Genline generates candidates on the cheapest capable providers,
scores every one, delivers only those that pass, and charges credits only for what it delivered.

Every error is an RFC 9457 problem (`application/problem+json`) with the request's id; send
`X-Request-ID` to choose that id, and retry a submission safely with `Idempotency-Key`."""
TAGS = [
    {"name": "jobs", "description": "Submit a job, follow it to its links, report a bad image."},
    {"name": "subjects", "description": "The people and products your jobs are of: made known by your photos, each"
                                        " photo screened and judged, kept sealed, erased on request or after the"
                                        " retention."},
    {"name": "events", "description": "Each job's event log, and live streams of it (Server-Sent Events)."},
    {"name": "uploads", "description": "Input photos for jobs, screened and stored without metadata."},
    {"name": "templates", "description": "The template catalogue: what each template asks of its input photo, its"
                                         " stages and its prices."},
    {"name": "account", "description": "Prices before paying, the balance, holds and retry tokens, the plan's usage."},
    {"name": "billing", "description": "Buy credits: checkout through the payment processor's hosted page, a saved"
                                       " card, and auto top-up below a balance."},
    {"name": "receipts", "description": "Signed receipts of final jobs, chained per tenant, and the keys that verify"
                                        " them offline."},
    {"name": "provenance", "description": "What a file proves: its Content Credentials and watermark, checked by"
                                          " anyone, and the trust anchor they chain to."},
    {"name": "keys", "description": "Your API keys: create them with scopes, list, revoke and rotate them."},
    {"name": "webhooks", "description": "Signed webhooks when jobs end: endpoints, secrets, every attempt, redelivery."},
    {"name": "members", "description": "The tenant's people and machines: members with roles, invitations, service"
                                       " accounts, the role table, and the audit log."},
    {"name": "sign-in", "description": "Signing in to the console: single sign-on through the tenant's OpenID Connect"
                                       " provider, links by mail, and sessions."},
    {"name": "openai", "description": "OpenAI's Images, Files and Batches APIs, so the `openai` package and LiteLLM"
                                      " call Genline unchanged; errors in OpenAI's shape."},
    {"name": "evaluations", "description": "Images you bring, judged by the scorer as a job's candidates are: a"
                                           " verdict per dimension with reasons; nothing generated."},
    {"name": "meta", "description": "Where to start: the documentation, this document, the console."},
]


def receipt_signer(settings: IngestSettings) -> ReceiptSigner:
    """The configured key; without one (development, tests), a key of this process's own,
    published like any other."""
    if settings.receipt_signing_key is not None:
        return ReceiptSigner(load_signing_key(settings.receipt_signing_key.get_secret_value()))
    log.warning("GENLINE_RECEIPT_SIGNING_KEY is not set: receipts are signed with a key made for this process")
    return ReceiptSigner(Ed25519PrivateKey.generate())


ROUTERS = (root.router, jobs.router, subjects.router, candidates.router, events.router, uploads.router, account.router, alerts.router,
           prompt_screening.router, usage.router, receipts.router, provenance.router, templates.router,
           key_routes.router, webhooks.router, admin.router, admin_tenants.router, admin_platform.router,
           internal.router, billing.router, members.router, sign_in.router, sso.router, audit.router,
           admin_members.router, openai_images.router, openai_images.keys_router, batch_files.router,
           batches.router, evaluations.router)


def create_api(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None) -> FastAPI:
    """The HTTP API, its routes and the console, without the service behind them: what
    `build` serves, and the document `openapi_document` renders."""
    # /docs/ is the documentation site (its API reference is rendered from this document);
    # FastAPI's interactive explorer answers at /swagger.
    app = api.create_app("ingest", api.Described(title="Genline", description=DESCRIPTION, tags=TAGS, swagger_url="/swagger"), lifespan=lifespan)
    for router in ROUTERS:
        app.include_router(router)
    problems.answer_errors_as(app, openai_errors.SHAPE)
    console.mount(app)
    documentation.mount(app)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document ingest serves at /openapi.json, built without a database, a broker
    or settings (`genline openapi`, the documentation site's API reference)."""
    return create_api().openapi()


def build(settings: IngestSettings) -> tuple[ServiceRuntime, FastAPI]:
    runtime = ServiceRuntime("ingest", settings, migrations_package="services.ingest")
    objects = ObjectStore(settings)
    signer = receipt_signer(settings)
    if settings.consume_events:
        handlers.register(runtime.consumer, handlers.Projection(signer, settings))
        runtime.consume(handlers.CONSUMES)
    app = create_api(runtime.lifespan)
    app.state.runtime, app.state.settings, app.state.objects, app.state.signer = runtime, settings, objects, signer
    app.state.plans = load_plans(settings.plans_path)
    app.state.openai_models = load_models(settings.openai_models_path)
    app.state.trust_anchors = settings.trust_anchors()
    app.state.service_verifier = verifier_of(settings)
    app.state.screening = ScreeningGate(settings.screening_budget_bytes(), settings.screening_threads,
                                        wait_s=settings.screening_wait_s)
    member_wiring.install(app, runtime, settings=settings)
    app.state.prompt_gate = PromptGate(settings.prompt_rules, settings.prompt_screening_policy,
                                       moderation=hosted_moderation(runtime, settings))
    connect_grpc(runtime, app, name="ledger", target=settings.ledger_grpc_target,
                 stub_class=ledger_calls.rpc.LedgerServiceStub)
    connect_grpc(runtime, app, name="router", target=settings.router_grpc_target,
                 stub_class=admin_platform.rpc.RouterServiceStub)
    connect_http(runtime, app, name="delivery", base_url=settings.delivery_url, timeout_s=settings.delivery_timeout_s)
    connect_http(runtime, app, name="ledger", base_url=settings.ledger_url, timeout_s=settings.ledger_timeout_s)
    sweeper, batch_runner = Sweeper(runtime, settings, signer=signer), BatchRunner(app, settings)
    evaluation_runner = EvaluationRunner(app, settings)
    app.state.batch_runner, app.state.evaluation_runner = batch_runner, evaluation_runner
    retention = SubjectRetentionSweeper(Subjects(runtime, settings, objects))
    app.state.log_watch = LogWatch(runtime, settings.stream_poll_s)
    runtime.startup_hooks += [partial(publish_signing_key, runtime, signer), sweeper.start, retention.start,
                              app.state.log_watch.start, batch_runner.start, evaluation_runner.start]
    runtime.shutdown_hooks += [objects.aclose, evaluation_runner.stop, batch_runner.stop, sweeper.stop, retention.stop,
                               app.state.log_watch.stop]  # run in reverse: the store closes after its users stop
    app.router.routes.extend(telemetry.ops_routes(runtime.readiness_checks, runtime.reported_checks, about=runtime.about))
    return runtime, app


def hosted_moderation(runtime: ServiceRuntime, settings: IngestSettings) -> HostedModeration | None:
    """The moderation adapter when `moderation_url` is set; its client closes with the service."""
    if not settings.moderation_url:
        return None
    http = httpx.AsyncClient(follow_redirects=False)
    runtime.shutdown_hooks.append(http.aclose)
    key = settings.moderation_api_key.get_secret_value() if settings.moderation_api_key else None
    return HostedModeration(http=http, url=settings.moderation_url, api_key=key, model=settings.moderation_model, timeout_s=settings.moderation_timeout_s,
                            breaker=Breaker(failures=settings.moderation_breaker_failures, cooldown_s=settings.moderation_breaker_cooldown_s))


async def publish_signing_key(runtime: ServiceRuntime, signer: ReceiptSigner) -> None:
    async with runtime.pool.connection() as conn:
        await record_signing_key(conn, signer)


# The services ingest calls, each connected for the life of the service: opened onto
# `app.state` when the runtime starts, closed when it stops.


def connect_grpc(runtime: ServiceRuntime, app: FastAPI, *, name: str, target: str,
                 stub_class: Callable[..., object]) -> None:
    """One gRPC channel to service `name`; its stub is `app.state.<name>_stub`."""
    state = app.state

    async def open_channel() -> None:
        interceptors = tracing.grpc_client_interceptors() + identity_client_interceptor(signer_of(state.settings),
                                                                                        name)
        channel = grpc.aio.insecure_channel(target, interceptors=interceptors)
        setattr(state, f"{name}_channel", channel)
        setattr(state, f"{name}_stub", stub_class(channel))

    async def close_channel() -> None:
        await getattr(state, f"{name}_channel").close()

    runtime.startup_hooks.append(open_channel)
    runtime.shutdown_hooks.append(close_channel)


def connect_http(runtime: ServiceRuntime, app: FastAPI, *, name: str, base_url: str, timeout_s: float) -> None:
    """One HTTP client for service `name`'s internal API, signed as ingest: `app.state.<name>_http`
    (delivery's webhook endpoints and attempts, the ledger's checkouts and auto top-up)."""
    state = app.state

    async def open_client() -> None:
        setattr(state, f"{name}_http", httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                                                         auth=ServiceAuth(signer_of(state.settings), name)))

    async def close_client() -> None:
        await getattr(state, f"{name}_http").aclose()

    runtime.startup_hooks.append(open_client)
    runtime.shutdown_hooks.append(close_client)
