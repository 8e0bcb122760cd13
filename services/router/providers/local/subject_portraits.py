"""The local provider's portraits of a subject (`provider.py` hands it an order that carries
an identity): each candidate the subject's face from its weights (lora: the local trainer's
`LocalWeights`) or its photos (reference: cropped here, kept while the photo set is in use), in
its style's scene, with a defect drawn for it at the rates of `local.portrait` (portraits/).

And portraits of no subject (`paint_strangers`): a candidate whose style names a framing, in an
order that carries no identity, shows a person the model makes up, as a text-to-image model
asked for a headshot does — here one of the donor faces shipped with the router, drawn for each
candidate — with the defects a face of no one in particular can show (two faces, closed eyes).

Which defect a candidate gets is fixed by the job, its seed and its index, so a repeated call
paints the same candidates. The portraits are painted in the local provider's worker processes
(`painting_workers`), as its plain pictures are.
"""

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderError
from services.router.providers.identity_inputs import IdentityInput
from services.router.providers.local import painting_workers
from services.router.providers.local.portraits.defects import PortraitDefect
from services.router.providers.local.portraits.faces import (
    LocalWeights,
    NoFace,
    WeightsCache,
    strangers,
    weights_from_photos,
)
from services.router.providers.local.portraits.painter import Sitting
from services.router.providers.local.portraits.products import product_weights
from services.router.providers.local.portraits.scene import Look
from services.router.providers.registry import ProviderConfig

# What a portrait of no subject can show wrong: there is no one for it to be mistaken for.
STRANGER_DEFECTS = ("two_faces", "closed_eyes")


def is_portrait(params: Mapping[str, Any]) -> bool:
    """A candidate's style asks for a person: it names a framing (close, shoulders, waist)."""
    return "framing" in params


@dataclass(frozen=True, slots=True)
class Costed:
    """What each image of a call costs, and how long the call took."""

    cost_micro_usd: int
    latency_s: float


class LocalPortraits:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        self._from_photos = WeightsCache()
        self._unpacked = WeightsCache()

    async def paint(self, request: GenerationRequest, costed: Costed) -> list[GeneratedImage]:
        assert request.identity is not None
        return await self._painted(request, costed, weights=await self._weights(request.identity),
                                   indices=list(request.indices))

    async def paint_strangers(self, request: GenerationRequest, costed: Costed, *, indices: list[int]) -> list[GeneratedImage]:
        """Candidates `indices` of an order of no subject, each a stranger in its style's scene."""
        return await self._painted(request, costed, weights=strangers(), indices=indices, kinds=STRANGER_DEFECTS)

    async def _painted(self, request: GenerationRequest, costed: Costed, *, weights: LocalWeights, indices: list[int],
                       kinds: tuple[str, ...] | None = None) -> list[GeneratedImage]:
        painted = await painting_workers.paint_portraits([
            Sitting(weights=weights, look=Look.of(dict(request.params_for(index))), size=(request.width, request.height),
                    draw=_draw(request, index), defect=self._defect(request, index, kinds=kinds))
            for index in indices])
        return [GeneratedImage(index=index, data=data, media_type="image/jpeg", seed=request.seed_for(index),
                               cost_micro_usd=costed.cost_micro_usd, latency_s=costed.latency_s)
                for index, data in zip(indices, painted, strict=True)]

    async def _weights(self, identity: IdentityInput) -> LocalWeights:
        if identity.mode == "lora":
            if identity.weights is None:
                raise ProviderError(kind="bad_request", message=f"{self.name}: the identity's weights were not given")
            digest = hashlib.sha256(identity.weights).hexdigest()
            return self._kept(self._unpacked, digest) or self._unpack(digest, identity.weights)
        kept = self._kept(self._from_photos, identity.photo_set)
        if kept is not None:
            return kept
        made_of = product_weights if identity.kind == "product" else weights_from_photos
        try:
            made = await asyncio.to_thread(made_of, list(identity.photos), identity.trigger_word)
        except NoFace as error:
            raise ProviderError(kind="bad_request", message=f"{self.name}: {error}") from None
        self._from_photos.put(identity.photo_set, made)
        return made

    @staticmethod
    def _kept(cache: WeightsCache, key: str) -> LocalWeights | None:
        return cache.get(key) if key else None

    def _unpack(self, digest: str, data: bytes) -> LocalWeights:
        try:
            weights = LocalWeights.unpack(data)
        except ValueError as error:
            raise ProviderError(kind="bad_request", message=f"{self.name}: {error}") from None
        self._unpacked.put(digest, weights)
        return weights

    def _defect(self, request: GenerationRequest, index: int, *,
                kinds: tuple[str, ...] | None = None) -> PortraitDefect | None:
        """The defect planted in candidate `index`, if any: each kind (of `kinds`, all by default)
        at its rate of every portrait."""
        draw = _unit(f"portrait-defect|{request.job_id}|{request.seed}|{index}")
        by_reference = request.identity is not None and request.identity.mode == "reference"
        for kind, rate in self.config.local_options.portrait.rates(by_reference):
            if kinds is not None and kind not in kinds:
                continue
            if draw < rate:
                return cast(PortraitDefect, kind)  # rates() names the kinds of PortraitDefect
            draw -= rate
        return None


def _draw(request: GenerationRequest, index: int) -> tuple[int, ...]:
    """Candidate `index`'s own stream: its seed and index, and the words of its prompt."""
    digest = hashlib.sha256(request.prompt_for(index).encode()).digest()
    return request.seed % 2**63, index, int.from_bytes(digest[:8], "big")


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
