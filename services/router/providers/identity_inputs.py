"""How a model carries a subject's identity, declared per model in providers.yaml
(`inputs.identity`), and the identity a call carries (`IdentityInput`).

Two ways (DESIGN.md §13), each a provider declares in `capabilities.identity`:

* `lora`: LoRA weights by URL, with a scale, the subject's trigger word in the prompt. fal's
  FLUX LoRA models take a list, `loras: [{path, scale}]` (any number merged); Together's
  `image_loras: [{path, scale}]` (at most two, scale 0.3–1.2); Replicate's cog-flux models one
  URL in `lora_weights` and its scale in `lora_scale`. Weights are trained for one base model
  (`base`: FLUX.1 [dev] LoRAs run on FLUX.1 [dev] models only), so a model takes the weights of
  its base alone. The URL (`link`) is a presigned link to the copy in the internal bucket
  (fal, Together, and cog-flux from replicate/cog-flux@2943a6f on, which keeps a `.safetensors`
  URL's query string: before it, `make_download_url` kept only what precedes `?` and a
  presigned link lost its signature), or, for a cog-flux model built before that,
  `replicate_version`: the Replicate model version a training at Replicate made, as the
  loader reads one (`owner/name/version`), the only weights such a model can read.
* `reference`: the subject's photos as URLs of the provider's own storage (uploaded once,
  hosted_files.py; never inline), one (`url`: fal's flux-pulid `reference_image_url`) or several
  (`list`: Kontext's `image_urls`), up to `max`.

Pure: `lora_fields`, `reference_fields` and `prompted` give what a call adds to a model's input
(`model_calls.model_input` puts them in).
"""

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IdentityMode = Literal["lora", "reference"]
# The local portrait model's weights: its own format (faces.LocalWeights), for local models only.
LOCAL_BASE = "genline-local-faces"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LoraInput(_Frozen):
    field: str
    style: Literal["list", "url"] = "list"
    path_key: str = "path"
    scale_key: str = "scale"
    # `url` style: the field the scale goes in (cog-flux's `lora_scale`); none: the model's default.
    scale_field: str | None = None
    scale: float = Field(1.0, ge=0, le=4)
    base: str = Field(min_length=1)
    link: Literal["presigned", "replicate_version"] = "presigned"
    # Where the trigger word goes: before the prompt, or nowhere (a model that needs none).
    trigger: Literal["prefix", "none"] = "prefix"


class ReferenceInput(_Frozen):
    field: str
    style: Literal["url", "list"] = "url"
    max: int = Field(1, ge=1, le=16)


class IdentityInputs(_Frozen):
    lora: LoraInput | None = None
    reference: ReferenceInput | None = None

    def takes(self, mode: str) -> bool:
        return (mode == "lora" and self.lora is not None) or (mode == "reference" and self.reference is not None)

    def fields(self) -> list[tuple[str, str]]:
        named = [("identity.lora", self.lora.field if self.lora else None),
                 ("identity.lora.scale_field", self.lora.scale_field if self.lora else None),
                 ("identity.reference", self.reference.field if self.reference else None)]
        return [(role, field) for role, field in named if field]


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityInput:
    """The identity one call carries: by LoRA (the weights' base, a link to them, or the
    Replicate version a training made; the bytes themselves for the local model) or by
    reference (the subject's photos in clear, and their set's digest; `photo_urls`: where the
    provider keeps its copies of them, in the same order, once uploaded there)."""

    mode: IdentityMode
    subject_id: str
    trigger_word: str = ""
    kind: str = "person"
    base: str = ""
    weights_url: str | None = None
    provider_version: str | None = None
    weights: bytes | None = None
    photos: tuple[bytes, ...] = ()
    photo_set: str = ""
    photo_urls: tuple[str, ...] = ()


def can_carry(inputs: IdentityInputs | None, identity: IdentityInput) -> bool:
    """Whether a model declared with `inputs` can carry this identity."""
    if inputs is None or not inputs.takes(identity.mode):
        return False
    if identity.mode == "reference":
        return bool(identity.photos)
    lora = inputs.lora
    assert lora is not None
    if lora.base != identity.base:
        return False
    return bool(identity.provider_version if lora.link == "replicate_version" else identity.weights_url)


def reference_fields(reference: ReferenceInput, identity: IdentityInput, *, index: int) -> dict[str, Any]:
    """The subject's photos as candidate `index` sends them, by the URLs the provider keeps them
    at: one (each candidate another), or up to `max`."""
    urls = identity.photo_urls
    if not urls:
        raise ValueError("the subject's photos go to a model as files the provider keeps: upload them first")
    if reference.style == "url":
        return {reference.field: urls[index % len(urls)]}
    return {reference.field: [urls[(index + n) % len(urls)] for n in range(min(reference.max, len(urls)))]}


def prompted(lora: LoraInput, identity: IdentityInput, *, prompt: str) -> str:
    """The prompt with the subject's trigger word where the model wants it."""
    return f"{identity.trigger_word} {prompt}".strip() if lora.trigger == "prefix" else prompt


def lora_fields(lora: LoraInput, identity: IdentityInput) -> dict[str, Any]:
    url = replicate_weights(identity.provider_version or "") if lora.link == "replicate_version" else identity.weights_url
    if lora.style == "url":
        fields: dict[str, Any] = {lora.field: url}
        if lora.scale_field:
            fields[lora.scale_field] = lora.scale
        return fields
    return {lora.field: [{lora.path_key: url, lora.scale_key: lora.scale}]}


def replicate_weights(version: str) -> str:
    """A Replicate model version as cog-flux's weights loader takes it: `owner/name/version`
    (replicate/cog-flux `weights.py` `make_download_url`). Replicate names a version
    `owner/name:version`, which the loader reads as a model named `name:version`, and fails."""
    owner_name, _, version_id = version.partition(":")
    return f"{owner_name}/{version_id}" if version_id else owner_name


def photo_type(photo: bytes) -> str:
    """A photo's media type, read from its first bytes (screening let only these through)."""
    return "image/png" if photo.startswith(b"\x89PNG") else "image/webp" if photo[8:12] == b"WEBP" else "image/jpeg"
