"""The local provider: `LocalGenerator` behind the provider interface, with a character.

Several local providers can be configured with different prices, latencies, failure
rates and defect rates, so that routing has a market to choose from offline. Everything
is deterministic: the same request paints the same PNGs and fails or succeeds the same
way. Paintings are made in worker processes (`painting_workers`); the simulated latency is
slept on the clock.

A local provider that declares `capabilities.video` makes real MP4 clips instead
(`clip_maker`): from the prompt's painting on `generate`, from each candidate's image on
`animate`, each clip defective with `defect_rate` (kinds: `local.options.defects`).

A local provider configured for another stage (`local.operation`) runs that image
operation (`image_stages`) on each candidate's input instead of painting, priced like a
painting of the output's size.

A local provider that declares `capabilities.identity` paints an order of a subject as
portraits of it (`subject_portraits`): the subject's face from its weights or its photos, in each
candidate's style, with the defects `local.portrait` plants. Another order it paints as any
local provider does, each style's words added to the prompt.

Any local provider paints a candidate whose style names a framing (the styles of `styled-headshots`)
in an order of no subject as a portrait of a stranger (`subject_portraits.paint_strangers`): a
text-to-image model asked for a headshot paints a person, and the scorer's face checks need one.
"""

import asyncio
import hashlib
from typing import Any

from services.router.clock import LoopClock
from services.router.providers import image_stages
from services.router.providers.adapters import AdapterTraits, adapter
from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderContext, ProviderError
from services.router.providers.inputs import CountInput, ModelInputs, SeedInput
from services.router.providers.local import painting_workers
from services.router.providers.local.clip_maker import (
    CLIP_DEFECTS,
    ClipDefect,
    ClipMaker,
    ClipShape,
    ClipTake,
    clip_defect,
    still_of,
)
from services.router.providers.local.painter import CandidateRange
from services.router.providers.local.subject_portraits import Costed, LocalPortraits, is_portrait
from services.router.providers.registry import ProviderConfig


@adapter("local")
class LocalProvider:
    # It paints any size, as many as asked, each candidate from its own seed.
    traits = AdapterTraits(needs_endpoint=False, needs_credentials=False, makes_clips=True, trains=True,
                           default_inputs=ModelInputs(count=CountInput(field="count", max=64), seed=SeedInput()))

    def __init__(self, config: ProviderConfig, context: ProviderContext | None = None,
                 *, secret: str | None = None) -> None:
        self.name = config.name
        self.config = config
        self.clock = (context.clock if context else None) or LoopClock()
        self.portraits = LocalPortraits(config)

    @classmethod
    def check_config(cls, config: ProviderConfig, options: Any) -> None:
        """A video provider's defects are kinds the clip maker plants."""
        for kind in (config.local_options.options.get("defects") or ()) if config.makes_clips else ():
            clip_defect(kind)

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]:
        self._check(request)
        latency = self._latency_s(request.count)
        if latency > request.timeout_s:
            await self.clock.sleep(request.timeout_s)
            raise ProviderError(kind="timeout", message=f"{self.name} takes {latency:.1f} s, "
                                           f"over the {request.timeout_s:.1f} s allowed")
        await self.clock.sleep(latency)
        if self._fails(request):
            raise ProviderError(kind="server_error", message=f"{self.name} failed (simulated)")
        if request.video is not None:
            return await self._make_clips(request, latency)
        if request.capability != "generate":
            return await self._run_stage(request, latency)
        cost = self.config.price.price_micro_usd((request.width, request.height), latency / max(1, request.count))
        if request.identity is not None:
            return await self.portraits.paint(request, Costed(cost, latency))
        people = [index for index in request.indices if is_portrait(request.params_for(index))]
        made = await self.portraits.paint_strangers(request, Costed(cost, latency), indices=people) if people else []
        painted = []
        for run in request.style_runs():
            if run.start_index in people:  # a run is one style's, a portrait or not throughout
                continue
            batch = CandidateRange(prompt=run.prompt_for(run.start_index), seed=run.seed, count=run.count, start_index=run.start_index)
            painted += await painting_workers.paint(batch, width=request.width, height=request.height,
                                                    defect_rate=self.config.local_options.defect_rate)
        return made + [GeneratedImage(index=p.index, data=p.png, media_type="image/png", seed=request.seed_for(p.index),
                                      cost_micro_usd=cost, latency_s=latency) for p in painted]

    async def _run_stage(self, request: GenerationRequest, latency: float) -> list[GeneratedImage]:
        operation = image_stages.OPERATIONS[self.config.local_options.operation or ""]
        params = {**request.params, **self.config.local_options.options}
        images = []
        for index in request.indices:
            source = request.input_for(index)
            if source is None:
                raise ProviderError(kind="bad_request", message=f"{self.name}: {request.capability} needs an input image")
            try:
                out = await asyncio.to_thread(operation, source, params, seed=request.seed_for(index))
            except image_stages.StageInputError as error:
                raise ProviderError(kind="bad_request", message=f"{self.name}: {error}") from None
            cost = self.config.price.price_micro_usd((out.width, out.height), latency / max(1, request.count))
            images.append(GeneratedImage(index=index, data=out.data, media_type=out.media_type,
                                         seed=request.seed_for(index), cost_micro_usd=cost, latency_s=latency))
        return images

    async def _make_clips(self, request: GenerationRequest, latency: float) -> list[GeneratedImage]:
        assert request.video is not None
        spec = request.video
        width, height = spec.size()
        fps = self.config.clip_inputs_for(self.config.models[0]).fps.rate_for(spec.fps)
        maker = ClipMaker(ClipShape(width=width, height=height, duration_s=spec.duration_s, fps=spec.fps or fps))
        cost = self.config.clip_price_micro_usd(spec)
        clips = []
        for index in request.indices:
            take = ClipTake(request.seed_for(index), self._clip_defect(request, index))
            if request.clip_source == "image":
                first = request.input_for(index)
                if first is None:
                    raise ProviderError(kind="bad_request", message=f"{self.name}: candidate {index} has no first frame to animate")
                made = await asyncio.to_thread(maker.from_still, still_of(first), take)
            else:
                made = await asyncio.to_thread(maker.from_text, request.prompt, take)
            clips.append(GeneratedImage(index=index, data=made.data, media_type="video/mp4",
                                        seed=request.seed_for(index), cost_micro_usd=cost, latency_s=latency))
        return clips

    def _clip_defect(self, request: GenerationRequest, index: int) -> ClipDefect | None:
        """Whether clip `index` is defective, and how: each clip drawn on its own (`defect_rate`),
        its kind among `local.options.defects` (all kinds by default)."""
        local = self.config.local_options
        if _unit_draw("clip-defect", request.job_id, request.seed, index) >= local.defect_rate:
            return None
        kinds = [clip_defect(k) for k in local.options.get("defects", CLIP_DEFECTS)]
        return kinds[int(_unit_draw("clip-kind", request.job_id, request.seed, index) * len(kinds))]

    def _check(self, request: GenerationRequest) -> None:
        if request.video is not None:
            self._check_clip(request)
            return
        if self.config.makes_clips:
            raise ProviderError(kind="bad_request", message=f"{self.name} makes clips only")
        if not self.config.runs(request.capability):
            raise ProviderError(kind="bad_request", message=f"{self.name} does not run {request.capability}")
        if request.capability != "generate":
            return  # the size is the input's; no model pin applies to it
        if self.config.model_for(request.model, request.model_version) is None:
            raise ProviderError(kind="bad_request", message=f"{self.name} has no model {request.model} {request.model_version}")
        if not self.config.capabilities.supports_size(request.width, request.height):
            raise ProviderError(kind="bad_request", message=f"{self.name} cannot paint {request.width}×{request.height}")

    def _check_clip(self, request: GenerationRequest) -> None:
        assert request.video is not None
        if not self.config.can_make_clip(self.config.models[0], request.video, from_image=request.clip_source == "image"):
            raise ProviderError(kind="bad_request", message=f"{self.name} does not make clips from {request.clip_source}")

    def _latency_s(self, count: int) -> float:
        configured = self.config.local_options.latency_s
        return configured if configured is not None else self.config.latency.batch_s(count)

    def _fails(self, request: GenerationRequest) -> bool:
        rate = self.config.local_options.failure_rate
        return rate > 0 and _unit_draw(self.name, request.call_key, request.seed) < rate


def _unit_draw(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by `parts`, stable across runs and processes."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
