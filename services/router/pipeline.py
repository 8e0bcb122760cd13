"""A template's stages, run for one attempt: each stage routed like generation.

`run_pipeline(engine, request, stages)`, the request's `input` the job's input photo (if any):

1. the first stage plans the attempt's N candidates and runs them, on generation
   providers (`generate`) or, for a pipeline that starts from the job's input photo, on
   providers of its capability, every candidate from the photo;
2. every later stage runs each surviving candidate once more, on the cheapest healthy
   provider of that stage's capability (the engine's ranking, fallback, breakers and cap),
   the candidates side by side; a candidate a stage cannot process is dropped;
3. the result is one `AttemptResult`: the last stage's images, each with the steps it went
   through, and every call of every stage, tagged with its stage, so that cost and latency
   are known per stage and the attempt's cost is their sum.

A video job's last stage makes its clips (`request.video`): a `generate` stage from text, an
`animate` stage from each candidate's still (or, first, from the job's first frame); the
stages before it make stills at the clip's size.

A generate-only pipeline is exactly `engine.route(request)`.
"""

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from services.common.templates import Stage
from services.router.engine import RoutingEngine
from services.router.routing_types import (
    AllProvidersFailed,
    AttemptResult,
    CallRecord,
    RoutedImage,
    RouteRequest,
    RoutingError,
    StageStep,
    with_calls,
)


class MissingInput(RoutingError):
    """The pipeline starts from the job's input photo, and the job has none."""


async def run_pipeline(engine: RoutingEngine, request: RouteRequest, *, stages: tuple[Stage, ...]) -> AttemptResult:
    """The attempt through the stages; only the first works on the job's input photo (`request.input`)."""
    first, input_photo = stages[0], request.input
    if first.capability != "generate" and input_photo is None:
        raise MissingInput(f"job {request.job_id}: the stage {first.capability} needs the job's input photo")
    # Only the last stage's images are kept as they come: a stage before it hands its bytes on.
    keep = request.keep if len(stages) == 1 else None
    video = request.video if len(stages) == 1 else None
    result = await engine.route(_stage_request(request, first, input=input_photo, keep=keep, video=video))
    result = _tagged(result, first, number=0)
    for number, stage in enumerate(stages[1:], start=1):
        last = number == len(stages) - 1
        later = replace(request, input=None, keep=request.keep if last else None, video=request.video if last else None)
        result = await StageRun(engine=engine, request=later, stage=stage, number=number).over(result)
    return result


def _stage_request(request: RouteRequest, stage: Stage, **changes: Any) -> RouteRequest:
    return replace(request, capability=stage.capability, params=dict(stage.params), provider=stage.provider,
                   **changes)


def _tagged(result: AttemptResult, stage: Stage, *, number: int) -> AttemptResult:
    """The first stage's result with its calls and images marked as that stage's."""
    calls = tuple(replace(call, stage=stage.capability, stage_index=number) for call in result.calls)
    images = tuple(replace(routed, steps=(_step(stage, routed),)) for routed in result.images)
    return replace(result, calls=calls, images=images)


def _step(stage: Stage, routed: RoutedImage) -> StageStep:
    return StageStep(stage=stage.capability, provider=routed.provider, cost_micro_usd=routed.image.cost_micro_usd, latency_s=routed.image.latency_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class StageRun:
    """A later stage run on the candidates the stages before it made: the engine routes each
    candidate's `request` through `stage`, the `number`th of the pipeline (0: the first)."""

    engine: RoutingEngine
    request: RouteRequest
    stage: Stage
    number: int

    async def over(self, previous: AttemptResult) -> AttemptResult:
        """`previous` with each of its candidates through the stage; those the stage cannot process dropped."""
        request, stage = self.request, self.stage
        cap = request.cost_cap_micro_usd
        share = None if cap is None else max(0, cap - previous.actual_cost_micro_usd) // max(1, len(previous.images))
        runs = await asyncio.gather(*(self._one_candidate(routed, share) for routed in previous.images))
        images = tuple(image for image, _ in runs if image is not None)
        calls = previous.calls + tuple(call for _, calls in runs for call in calls)
        spent = previous.actual_cost_micro_usd + sum(c.actual_cost_micro_usd for _, cs in runs for c in cs)
        if not images:
            errors = tuple(call.error for call in calls if call.error)
            raise with_calls(AllProvidersFailed(f"job {request.job_id}: no candidate got through {stage.capability}",
                                                 errors), calls, spent_micro_usd=spent)
        return replace(previous, images=images, calls=calls, actual_cost_micro_usd=spent,
                       expected_cost_micro_usd=sum(c.expected_cost_micro_usd for c in calls if c.outcome == "ok"),
                       latency_s=previous.latency_s + max((c.latency_s for _, cs in runs for c in cs), default=0.0),
                       errors=tuple(call.error for call in calls if call.error))

    async def _one_candidate(self, routed: RoutedImage,
                             cap: int | None) -> tuple[RoutedImage | None, tuple[CallRecord, ...]]:
        stage, number = self.stage, self.number
        index = routed.image.index
        stage_request = _stage_request(self.request, stage, candidates=1, images_needed=1, start_index=index,
                                       inputs={index: routed.image.data}, cost_cap_micro_usd=cap)
        try:
            result = await self.engine.route(stage_request)
        except RoutingError as error:
            return None, tuple(replace(c, stage=stage.capability, stage_index=number) for c in error.calls)
        calls = tuple(replace(c, stage=stage.capability, stage_index=number) for c in result.calls)
        done = result.images[0]
        return replace(done, steps=(*routed.steps, _step(stage, done))), calls
