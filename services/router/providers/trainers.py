"""Trainers: a subject's identity trained at a provider, as a remote job.

A provider whose entry declares a `trainer` (training_config.py) has one `Trainer`, made by the
module of its adapter that registers one with `@trainer("adapter")` (fal_training.py,
replicate_training.py, local_trainer.py). A trainer only talks to the provider: submit a
training (`submit` → a handle, JSON, written down by the caller before the first poll), poll it
(`poll` → its output once it succeeded, None while it runs; a ProviderError once it failed),
cancel it, fetch its weights (`weights`: the bytes of one `.safetensors`, a tar of one unpacked
as cog-flux unpacks it) and delete what the provider keeps of it where its API can (`forget`).
The flow around it (who drives which training, resuming, copying, events) is
`services/router/identities/training.py`.

What every trainer's input is made of is here too (`training_input`): the photos as one zip
or a list, each a data: URI or a link, the trigger word, the steps and the fixed inputs, as
the provider's entry maps them.
"""

import base64
import io
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.identity_inputs import photo_uri
from services.router.providers.registry import ProviderConfig
from services.router.providers.training_config import TrainerConfig

_TRAINERS: dict[str, "TrainerClass"] = {}
_Class = TypeVar("_Class", bound=type)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingRequest:
    """One training: of which identity, with which trigger word, from which photos (in clear);
    `images_url` the link to them where the trainer takes a link (`images.via: presigned`); of a
    person or a product."""

    identity_id: str
    trigger_word: str
    photos: tuple[bytes, ...]
    images_url: str | None = None
    kind: str = "person"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingOutput:
    """A finished training: where its weights are (or the weights, from the local trainer), the
    model version it pushed (Replicate), and what it reports it cost or took."""

    weights_url: str | None = None
    weights: bytes | None = None
    provider_version: str | None = None
    compute_s: float | None = None


class Trainer(Protocol):
    name: str
    config: ProviderConfig

    @property
    def training(self) -> TrainerConfig: ...

    async def submit(self, request: TrainingRequest) -> dict[str, Any]: ...

    async def poll(self, handle: dict[str, Any]) -> TrainingOutput | None: ...

    async def cancel(self, handle: dict[str, Any]) -> None: ...

    async def weights(self, output: TrainingOutput) -> bytes: ...

    async def forget(self, provider_version: str | None) -> None: ...

    def remote_id(self, handle: dict[str, Any]) -> str: ...


class TrainerClass(Protocol):
    def __call__(self, config: ProviderConfig, context: ProviderContext, secret: str | None = None) -> Trainer: ...


def trainer(adapter: str) -> Callable[[_Class], _Class]:
    """Register the decorated class as the trainer of providers of `adapter`."""
    def register(cls: _Class) -> _Class:
        _TRAINERS[adapter] = cast(TrainerClass, cls)
        return cls
    return register


def build_trainer(config: ProviderConfig, context: ProviderContext, *, secret: str | None = None) -> Trainer:
    from services.router.providers import adapters

    adapters.known_adapters()  # imports every adapter module, and so every trainer
    if config.trainer is None or config.adapter not in _TRAINERS:
        raise ValueError(f"provider {config.name!r} has no trainer")
    return _TRAINERS[config.adapter](config, context, secret=secret)


def training_input(config: TrainerConfig, request: TrainingRequest) -> dict[str, Any]:
    """The trainer's input: the photos where `images` says, the trigger word, the steps, the fixed inputs."""
    images = config.images
    if not images.min <= len(request.photos) <= images.max:
        raise ProviderError(kind="bad_request", message=f"the trainer takes {images.min} to {images.max} photos, not"
                                           f" {len(request.photos)}")
    if request.images_url is not None:
        sent: Any = request.images_url
    elif images.style == "zip":
        sent = "data:application/zip;base64," + base64.b64encode(photos_zip(request.photos)).decode("ascii")
    else:
        sent = [photo_uri(photo) for photo in request.photos]
    payload: dict[str, Any] = {images.field: sent}
    if config.trigger_field:
        payload[config.trigger_field] = request.trigger_word
    if config.steps is not None:
        payload[config.steps.field] = config.steps.default
    return payload | config.fixed


def photos_zip(photos: tuple[bytes, ...]) -> bytes:
    """The photos in one zip, named by their order and type (a trainer captions them itself)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n, photo in enumerate(photos):
            suffix = "png" if photo.startswith(b"\x89PNG") else "webp" if photo[8:12] == b"WEBP" else "jpg"
            archive.writestr(f"{n:02d}.{suffix}", photo)
    return buffer.getvalue()


def output_at(output: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of a trainer's output (`diffusers_lora_file.url`), or None."""
    value: Any = output
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def safetensors_of(data: bytes, provider: str) -> bytes:
    """The weights as one `.safetensors`: as they are, or the one file of a tar (Replicate's
    trainers answer a tar; cog-flux reads a tar the same way)."""
    if _is_safetensors(data):
        return data
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            found = [member for member in archive.getmembers() if member.isfile() and member.name.endswith(".safetensors")]
            if len(found) != 1:
                raise ProviderError(kind="bad_output", message=f"{provider}: the weights' tar holds {len(found)} .safetensors files,"
                                                  " not one", terminal=True)
            extracted = archive.extractfile(found[0])
            assert extracted is not None, "a regular member has a file"
            data = extracted.read()
    except tarfile.TarError:
        raise ProviderError(kind="bad_output", message=f"{provider}: the weights are neither safetensors nor a tar",
                            terminal=True) from None
    if not _is_safetensors(data):
        raise ProviderError(kind="bad_output", message=f"{provider}: the weights' file is not safetensors", terminal=True)
    return data


def _is_safetensors(data: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then that much JSON."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    return 2 <= size <= len(data) - 8 and data[8:9] == b"{"
