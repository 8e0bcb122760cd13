"""The router service: admitted jobs and rework requests become candidates, generated on
the providers of the registry by expected cost per passing image."""

import os
import socket
import uuid

import httpx
from starlette.applications import Starlette

from services.common import targets
from services.common.data_keys import DataKeys
from services.common.runtime import GRPC_DRAIN_S, ServiceRuntime, ops_app
from services.common.storage import ObjectStore
from services.router import handlers, metrics, store
from services.router.engine import RoutingEngine
from services.router.generation import AttemptRunner
from services.router.grpc import RouterService, start_router_grpc
from services.router.planning import PassRateEstimator
from services.router.providers.base import ProviderContext
from services.router.providers.copies import BucketCopies
from services.router.providers.factory import build_providers
from services.router.providers.registry import Registry, load_registry
from services.router.providers.trainers import Trainer, build_trainer
from services.router.providers.webhooks import WebhookInbox
from services.router.routes import provider_webhook_route
from services.router.routing_types import BreakerSettings, ProviderRetries, QualitySettings, RoutingPolicy
from services.router.scheduler import AttemptScheduler
from services.router.settings import RouterSettings
from services.router.subjects.files import SubjectFiles
from services.router.subjects.orders import SubjectOrders
from services.router.subjects.training import TrainingSettings, TrainingSupervisor

# Attempts running when the router stops get this long to finish; their claims lapse otherwise.
ATTEMPT_DRAIN_S = 15


def routing_policy(settings: RouterSettings) -> RoutingPolicy:
    return RoutingPolicy(
        breaker=BreakerSettings(window_s=settings.breaker_window_s, min_calls=settings.breaker_min_calls,
                                failure_rate=settings.breaker_failure_rate, cooldown_s=settings.breaker_cooldown_s),
        quality=QualitySettings(window_s=settings.quality_window_s, window_verdicts=settings.quality_window_verdicts,
                                max_pass_rate=settings.quality_max_pass_rate, cooldown_s=settings.quality_cooldown_s),
        retry=ProviderRetries(base_delay_s=settings.retry_base_delay_s, max_delay_s=settings.retry_max_delay_s),
    )


def routing_engine(settings: RouterSettings, registry: Registry, *, context: ProviderContext) -> RoutingEngine:
    secrets = {name: secret.get_secret_value() for name, secret in settings.provider_secrets.items()}
    estimator = PassRateEstimator(priors=registry.pass_rate_priors(),
                                  half_life_s=settings.pass_rate_half_life_s)
    return RoutingEngine(registry=registry, providers=build_providers(registry, secrets=secrets, context=context), estimator=estimator,
                         policy=routing_policy(settings), journal=context.journal)


def trainers_of(settings: RouterSettings, registry: Registry, *, context: ProviderContext) -> dict[str, Trainer]:
    """A trainer for each provider that declares one, with its API key."""
    secrets = {name: secret.get_secret_value() for name, secret in settings.provider_secrets.items()}
    return {config.name: build_trainer(config, context, secret=secrets.get(config.credentials or ""))
            for config in registry.trainers()}


class RouterApp:
    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.runtime = ServiceRuntime("router", settings, migrations_package="services.router")
        self.objects = ObjectStore(settings)
        self.runtime.readiness_checks["object_store"] = self.objects.ping
        self.http = httpx.AsyncClient()
        registry = load_registry(settings.providers_path)
        self.webhooks = WebhookInbox()
        self.providers = ProviderContext(client=self.http, journal=store.RemoteJobs(self.runtime.pool),
                                         webhooks=self.webhooks, copies=BucketCopies(self.objects),
                                         outputs=targets.Guard.of(targets.Purpose.PROVIDER_HOSTS,
                                                                  settings.provider_allowed_networks))
        self.engine = routing_engine(settings, registry, context=self.providers)
        metrics.expose(self.engine, registry.providers, spend_alert_usd_per_hour=settings.spend_alert_usd_per_hour)
        # Names this process in the claims it holds on attempts.
        owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.data_keys = DataKeys(settings, "router")
        files = SubjectFiles(self.objects, self.data_keys)
        self.runner = AttemptRunner(runtime=self.runtime, engine=self.engine, objects=self.objects, settings=settings, owner=owner, data_keys=self.data_keys,
                                    subjects=SubjectOrders(runtime=self.runtime, engine=self.engine, files=files, link_ttl_s=settings.weights_link_ttl_s))
        self.trainings = TrainingSupervisor(
            runtime=self.runtime, trainers=trainers_of(settings, registry, context=self.providers), files=files, owner=owner,
            settings=TrainingSettings(settings.training_look_interval_s, settings.claim_lease_s,
                             settings.max_concurrent_trainings), webhooks=self.webhooks)
        self.scheduler = AttemptScheduler(
            pool=self.runtime.pool, engine=self.engine, run=self.runner.run, owner=owner, max_queued=settings.max_queued_attempts,
            max_running=settings.max_concurrent_attempts, poll_interval_s=settings.attempt_poll_interval_s,
            lease_s=settings.claim_lease_s)
        handlers.register(self.runtime.consumer, handlers.AttemptHandling(self.scheduler, settings.max_attempts,
                                                                 settings.pass_rate_half_life_s))
        self.runtime.consume(handlers.CONSUMES)
        self.runtime.startup_hooks.append(self._start)
        self.runtime.shutdown_hooks.append(self._stop)

    async def _start(self) -> None:
        self.grpc = await start_router_grpc(RouterService(self.engine, self.runner.refresh_pass_rates), self.settings)
        self.scheduler.start()
        self.trainings.start()

    async def _stop(self) -> None:
        # Remote jobs still running are left to the next router, which resumes them.
        self.providers.handing_over = True
        await self.trainings.stop()
        await self.scheduler.stop(ATTEMPT_DRAIN_S)
        await self.grpc.stop(grace=GRPC_DRAIN_S)
        await self.http.aclose()
        await self.data_keys.aclose()
        await self.objects.aclose()


def build(settings: RouterSettings) -> tuple[ServiceRuntime, Starlette]:
    router = RouterApp(settings)
    app = ops_app(router.runtime)
    app.router.routes.append(provider_webhook_route(router.engine.providers, router.webhooks))
    return router.runtime, app
