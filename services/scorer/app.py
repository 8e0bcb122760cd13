"""The scorer service: scores every candidate and selects what may ship; on its internal
API, measures input photos for ingest's template checks and calibrates thresholds for
ingest's calibration report."""

from starlette.applications import Starlette

from services.common.bus import EventConsumer
from services.common.data_keys import DataKeys
from services.common.internal_calls import guard, verifier_of
from services.common.runtime import ServiceRuntime, build_worker
from services.common.storage import ObjectStore
from services.scorer import handlers, routes
from services.scorer.routes import evaluations, measurements
from services.scorer.settings import ScorerSettings
from services.scorer.subjects import Likenesses


def build(settings: ScorerSettings) -> tuple[ServiceRuntime, Starlette]:
    scorer = handlers.new_scorer(settings)

    def register(consumer: EventConsumer, objects: ObjectStore, settings_: ScorerSettings) -> None:
        data_keys = DataKeys(settings_, "scorer")
        subjects = Likenesses(objects=objects, data_keys=data_keys, keep_s=settings_.data_key_cache_s)
        handlers.register(consumer, handlers.Workbench(objects=objects, scorer=scorer, settings=settings_, data_keys=data_keys, subjects=subjects))

    runtime, app = build_worker(handlers.CONSUMES, settings, register=register)
    verifier = verifier_of(settings)
    app.router.routes.append(guard(measurements.route(scorer), verifier, capability="measurements"))
    app.router.routes.append(guard(routes.route(), verifier, capability="calibration"))
    bench = evaluations.Bench(ObjectStore(settings), settings, DataKeys(settings, "scorer"))
    runtime.shutdown_hooks.append(bench.objects.aclose)
    app.router.routes.append(guard(evaluations.route(scorer, bench), verifier, capability="evaluations"))
    return runtime, app
