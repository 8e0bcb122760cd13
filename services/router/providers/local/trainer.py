"""The local trainer: a subject's identity trained offline, for the local portrait model.

Its "weights" are the subject's face crops (portraits/faces.py, `LocalWeights`: a ZIP of
aligned 256×256 JPEGs with their eyes and nose, and the donor face its defects borrow; a
product's cut-outs, portraits/products.py), made
when the training is submitted and handed back once `trainer.expected_s` has passed since: the
training's time is set in providers.yaml, like a hosted trainer's minutes. The handle (written
down before the first poll) holds the weights and when they are ready, so a router that
restarts meanwhile finds the training where it was, not started again. `local.failure_rate`
fails that share of trainings (the provider's fault); photos in which no face is found fail
it as a refusal (`bad_request`), which no more than any other failure is charged.
"""

import asyncio
import base64
import hashlib
import time
import uuid
from typing import Any

from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.local.portraits.faces import NoFace, weights_from_photos
from services.router.providers.local.portraits.products import product_weights
from services.router.providers.registry import ProviderConfig
from services.router.providers.trainers import TrainingOutput, TrainingRequest, trainer
from services.router.providers.training_config import TrainerConfig


@trainer("local")
class LocalTrainer:
    def __init__(self, config: ProviderConfig, context: ProviderContext | None = None,
                 *, secret: str | None = None) -> None:
        assert config.trainer is not None
        self.name, self.config = config.name, config

    @property
    def training(self) -> TrainerConfig:
        assert self.config.trainer is not None
        return self.config.trainer

    async def submit(self, request: TrainingRequest) -> dict[str, Any]:
        images = self.training.images
        if not images.min <= len(request.photos) <= images.max:
            raise ProviderError(kind="bad_request", message=f"{self.name} trains from {images.min} to {images.max} photos, not"
                                               f" {len(request.photos)}")
        try:
            made_of = product_weights if request.kind == "product" else weights_from_photos
            weights = await asyncio.to_thread(made_of, list(request.photos), request.trigger_word)
        except NoFace as error:
            raise ProviderError(kind="bad_request", message=f"{self.name}: {error}") from None
        return {"id": uuid.uuid4().hex, "identity": request.identity_id, "ready_at": time.time() + self.training.expected_s,
                "weights": base64.b64encode(weights.pack()).decode("ascii")}

    async def poll(self, handle: dict[str, Any]) -> TrainingOutput | None:
        if time.time() < float(handle["ready_at"]):
            return None
        if self._fails(handle):
            raise ProviderError(kind="server_error", message=f"{self.name}: the training failed (simulated)", terminal=True)
        return TrainingOutput(weights=base64.b64decode(handle["weights"]), compute_s=self.training.expected_s)

    async def cancel(self, handle: dict[str, Any]) -> None:
        """Nothing runs: a canceled local training is simply never polled again."""

    async def weights(self, output: TrainingOutput) -> bytes:
        assert output.weights is not None
        return output.weights

    async def forget(self, provider_version: str | None) -> None:
        """The local trainer keeps nothing of a training."""

    async def discard_photos(self, handle: dict[str, Any]) -> None:
        """The photos were never sent anywhere."""

    def remote_id(self, handle: dict[str, Any]) -> str:
        return str(handle.get("id", ""))

    def _fails(self, handle: dict[str, Any]) -> bool:
        rate = self.config.local_options.failure_rate
        digest = hashlib.sha256(f"{self.name}|{handle.get('identity')}".encode()).digest()
        return rate > 0 and int.from_bytes(digest[:8], "big") / 2**64 < rate
