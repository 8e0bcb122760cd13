"""Trainers: a subject's identity trained at a provider, as a remote job.

A provider whose entry declares a `trainer` (training_config.py) has one `Trainer`, made by the
module of its adapter that registers one with `@trainer("adapter")` (fal/training.py,
replicate/training.py, local/trainer.py). A trainer only talks to the provider: submit a
training (`submit` → a handle, JSON, written down by the caller before the first poll), poll it
(`poll` → its output once it succeeded, None while it runs; a ProviderError once it failed),
cancel it, fetch its weights (`weights`: the bytes of one `.safetensors`, a tar of one unpacked
as cog-flux unpacks it) and delete what the provider keeps of it where its API can (`forget`).
The flow around it (who drives which training, resuming, copying, events) is
`services/router/identities/training.py`.

What every trainer's input is made of is here too (`training_input`): the photos as one zip
(or a list), by the URL the provider keeps them at (uploaded to its storage, `images.via:
upload`) or a presigned link to a copy in the internal bucket (`presigned`), never inline; the
trigger word, the steps and the fixed inputs, as the provider's entry maps them.
"""

import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from services.router.providers.base import ProviderContext, ProviderError
from services.router.providers.hosted_files import FileHost, HostedFile, Upload, photo_upload
from services.router.providers.identity_inputs import photo_type
from services.router.providers.registry import ProviderConfig
from services.router.providers.training_config import TrainerConfig

_TRAINERS: dict[str, "TrainerClass"] = {}
_Class = TypeVar("_Class", bound=type)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingRequest:
    """One training: of which identity, with which trigger word, from which photos (in clear);
    `images_url` the presigned link to their zip (`images.via: presigned`); of a person or a
    product."""

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

    async def discard_photos(self, handle: dict[str, Any]) -> None: ...

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


def _check_photo_count(config: TrainerConfig, request: TrainingRequest) -> None:
    images = config.images
    if not images.min <= len(request.photos) <= images.max:
        raise ProviderError(kind="bad_request", message=f"the trainer takes {images.min} to {images.max} photos, not"
                                           f" {len(request.photos)}")


async def hosted_photos(config: TrainerConfig, request: TrainingRequest, *,
                        host: FileHost) -> tuple[str | list[str], list[HostedFile]]:
    """The photos as the trainer takes them, by URL: the presigned link to their zip, or uploaded
    to the provider's storage (one zip, or each photo), kept there as long as the training may
    run; and the files uploaded, to delete once the training ends."""
    _check_photo_count(config, request)
    if config.images.via == "presigned":
        if request.images_url is None:
            raise ValueError("images.via presigned: the caller keeps the photos' zip and links it")
        return request.images_url, []
    keep_s = int(config.timeout_s)
    if config.images.style == "zip":
        zipped = await host.upload(Upload(data=photos_zip(request.photos), name="photos.zip", media_type="application/zip",
                                          keep_s=keep_s))
        return zipped.url, [zipped]
    uploaded = [await host.upload(photo_upload(photo, keep_s=keep_s)) for photo in request.photos]
    return [file.url for file in uploaded], uploaded


def training_input(config: TrainerConfig, request: TrainingRequest, *, images: str | list[str]) -> dict[str, Any]:
    """The trainer's input: the photos' URL (or URLs) where `images` says, the trigger word, the
    steps, the fixed inputs."""
    payload: dict[str, Any] = {config.images.field: images}
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
            suffix = {"image/png": "png", "image/webp": "webp"}.get(photo_type(photo), "jpg")
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
    """A safetensors file that holds together: an 8-byte little-endian header length, that much
    JSON naming at least one tensor, and every tensor's bytes within the file (a file cut short
    in transit, or not weights at all, is refused before it is kept and paid for)."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    if not 2 <= size <= len(data) - 8 or data[8:9] != b"{":
        return False
    try:
        header = json.loads(data[8:8 + size])
    except ValueError:
        return False
    tensors = [entry for name, entry in header.items() if name != "__metadata__"] if isinstance(header, dict) else []
    return bool(tensors) and all(_tensor_within(entry, len(data) - 8 - size) for entry in tensors)


def _tensor_within(entry: object, data_size: int) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str):
        return False
    offsets = entry.get("data_offsets")
    return (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size)
