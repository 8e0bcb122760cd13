"""How one model takes its inputs, declared per model in providers.yaml.

Models name the same ideas differently: FLUX on Replicate takes `aspect_ratio` and
`megapixels`, SDXL there `width` and `height`; fal takes an `image_size` object or preset,
OpenAI a `size` string from a short list. `ModelInputs` says where the prompt, size,
count, seed, negative prompt and steps of a request go in the model's input, which inputs
are fixed, and which template parameters it takes. It is checked when the file loads (an
error names the field) and is pure: `model_calls.model_input(inputs, request)` gives the input
to send and the size the images must come back at.

A model can make a job's size when the size it would be asked for is within
`size_tolerance` of the job's on each side (models round sides to a multiple, or offer a
few aspect ratios); the images that come back are held to that same tolerance.
"""

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.common.contracts import VideoSpec
from services.router.providers.identity_inputs import IdentityInputs

_RATIO = re.compile(r"^(\d+):(\d+)$")
# A megapixel as image models count them: "1" megapixel at 1:1 is 1024×1024.
MEGAPIXEL = 1024 * 1024
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_size(text: str) -> tuple[int, int]:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size like 1024x768")
    return int(match[1]), int(match[2])


def parse_ratio(text: str) -> float:
    match = _RATIO.match(text)
    if not match or int(match[2]) == 0:
        raise ValueError(f"{text!r} is not an aspect ratio like 16:9")
    return int(match[1]) / int(match[2])


class SizeInput(_Frozen):
    """Where the image size goes.

    * `width_height`: two integer fields, each side rounded to `multiple_of`;
    * `aspect_ratio`: the nearest of `ratios` in `field`, with the nearest of `megapixels`
      in `megapixels_field` when the model takes one (else it renders `area_megapixels`);
    * `size`: a `WxH` string in `field`, the nearest of `sizes` (any size when empty);
    * `image_size`: fal's object `{width, height}` in `field`, or the nearest named preset;
    * `fixed`: the model renders `sizes[0]` whatever it is asked.
    """

    style: Literal["width_height", "aspect_ratio", "size", "image_size", "fixed"] = "width_height"
    width_field: str = "width"
    height_field: str = "height"
    field: str | None = None
    multiple_of: int = Field(1, ge=1, le=256)
    ratios: tuple[str, ...] = ()
    megapixels_field: str | None = None
    megapixels: tuple[str, ...] = ()
    area_megapixels: float | None = Field(None, gt=0)
    sizes: tuple[str, ...] = ()
    presets: dict[str, str] = {}

    @field_validator("ratios")
    @classmethod
    def ratios_parse(cls, ratios: tuple[str, ...]) -> tuple[str, ...]:
        for ratio in ratios:
            parse_ratio(ratio)
        return ratios

    @field_validator("sizes")
    @classmethod
    def sizes_parse(cls, sizes: tuple[str, ...]) -> tuple[str, ...]:
        for size in sizes:
            parse_size(size)
        return sizes

    @field_validator("presets")
    @classmethod
    def presets_parse(cls, presets: dict[str, str]) -> dict[str, str]:
        for size in presets.values():
            parse_size(size)
        return presets

    @field_validator("megapixels")
    @classmethod
    def megapixels_are_numbers(cls, megapixels: tuple[str, ...]) -> tuple[str, ...]:
        for value in megapixels:
            if float(value) <= 0:
                raise ValueError(f"megapixels {value!r} must be positive")
        return megapixels

    @model_validator(mode="after")
    def style_has_what_it_needs(self) -> "SizeInput":
        if self.style in ("aspect_ratio", "size", "image_size") and not self.field:
            raise ValueError(f"size style {self.style!r} needs `field`: the input that takes the size")
        if self.style == "aspect_ratio" and not self.ratios:
            raise ValueError("size style 'aspect_ratio' needs `ratios`, the aspect ratios the model takes")
        if self.style == "aspect_ratio" and bool(self.megapixels_field) != bool(self.megapixels):
            raise ValueError("`megapixels_field` and `megapixels` go together")
        if self.style == "fixed" and len(self.sizes) != 1:
            raise ValueError("size style 'fixed' needs exactly one entry in `sizes`")
        return self

    def fields(self) -> list[str]:
        if self.style == "width_height":
            return [self.width_field, self.height_field]
        return [name for name in (self.field, self.megapixels_field) if name]

    @property
    def size_field(self) -> str:
        assert self.field, f"size style {self.style!r} has its `field` (checked on load)"
        return self.field

    def plan(self, width: int, height: int) -> tuple[dict[str, Any], tuple[int, int]]:
        """The size inputs for a `width`×`height` image, and the size the model will make."""
        if self.style == "width_height":
            made = (self._rounded(width), self._rounded(height))
            return {self.width_field: made[0], self.height_field: made[1]}, made
        if self.style == "aspect_ratio":
            return self._aspect_ratio(width, height)
        if self.style == "fixed":
            return {}, parse_size(self.sizes[0])
        if self.style == "image_size" and self.presets:
            name = min(self.presets, key=lambda n: _distance(parse_size(self.presets[n]), (width, height)))
            return {self.size_field: name}, parse_size(self.presets[name])
        made = _nearest(self.sizes, width, height=height) if self.sizes else (self._rounded(width), self._rounded(height))
        value: Any = f"{made[0]}x{made[1]}" if self.style == "size" else {"width": made[0], "height": made[1]}
        return {self.size_field: value}, made

    def _aspect_ratio(self, width: int, height: int) -> tuple[dict[str, Any], tuple[int, int]]:
        ratio = min(self.ratios, key=lambda r: abs(math.log(parse_ratio(r) / (width / height))))
        sent: dict[str, Any] = {self.size_field: ratio}
        area = self.area_megapixels * MEGAPIXEL if self.area_megapixels else width * height
        if self.megapixels_field:
            chosen = min(self.megapixels, key=lambda mp: abs(math.log(float(mp) * MEGAPIXEL / (width * height))))
            sent[self.megapixels_field] = chosen
            area = float(chosen) * MEGAPIXEL
        side = math.sqrt(area * parse_ratio(ratio))
        return sent, (self._rounded(side), self._rounded(area / side))

    def _rounded(self, side: float) -> int:
        return max(self.multiple_of, round(side / self.multiple_of) * self.multiple_of)


class CountInput(_Frozen):
    field: str
    max: int = Field(4, ge=1, le=64)


class SeedInput(_Frozen):
    field: str = "seed"
    # The largest seed the model takes; larger seeds wrap around.
    max: int = Field(2**31 - 1, ge=1)


class NamedInput(_Frozen):
    field: str


class StepsInput(_Frozen):
    field: str
    default: int = Field(ge=1, le=500)
    max: int = Field(500, ge=1)


class DurationInput(_Frozen):
    """Where a clip's length goes and how the model writes it: `number` (5), `string` ("5"),
    `suffixed` ("5s", as Veo takes it) or `frames` (a frame count: seconds × the model's rate,
    as Wan takes `num_frames`). The model makes one of `allowed` seconds (then the shortest
    allowed length at least as long as asked is sent, if it is not much longer: at most a
    quarter, or a second, more), or any length from `min_s` to `max_s`."""

    field: str = "duration"
    style: Literal["number", "string", "suffixed", "frames"] = "number"
    allowed: tuple[float, ...] = ()
    min_s: float = Field(1.0, gt=0)
    max_s: float = Field(10.0, gt=0)
    min_frames: int = Field(1, ge=1)
    max_frames: int = Field(100_000, ge=1)

    def seconds_for(self, asked_s: float) -> float | None:
        """The length the model is asked for, at least `asked_s`; None if it makes none that long."""
        if self.allowed:
            longest = asked_s + max(1.0, asked_s / 4)
            return min((s for s in self.allowed if asked_s - 1e-9 <= s <= longest + 1e-9), default=None)
        return asked_s if self.min_s <= asked_s <= self.max_s else None

    def value(self, seconds: float, fps: int) -> Any:
        whole = int(seconds) if float(seconds).is_integer() else seconds
        if self.style == "string":
            return str(whole)
        if self.style == "suffixed":
            return f"{whole}s"
        if self.style == "frames":
            return min(self.max_frames, max(self.min_frames, round(seconds * fps)))
        return whole


class ChoiceInput(_Frozen):
    """A choice the model names its own way: Genline's value (an aspect ratio, a resolution tier)
    → the model's (`{"720p": "standard", "1080p": "pro"}` in Kling's `mode`). No `field`: the
    model makes only these, and takes no input for it."""

    field: str | None = None
    values: dict[str, Any] = Field(min_length=1)


class FpsInput(_Frozen):
    """The model's frame rate: `default` when it takes none (no `field`), else any rate from
    `min` to `max`, sent in `field`."""

    field: str | None = None
    default: int = Field(24, ge=1, le=120)
    min: int = Field(1, ge=1)
    max: int = Field(60, ge=1)

    def rate_for(self, asked: int | None) -> int:
        if self.field is None or asked is None:
            return self.default
        return min(self.max, max(self.min, asked))


class VideoInputs(_Frozen):
    """How a video model takes a clip's shape: its length, aspect ratio, resolution tier, rate,
    and the first and last frames (an image as a data: URI in the named field)."""

    duration: DurationInput = DurationInput()
    aspect_ratio: ChoiceInput | None = None
    resolution: ChoiceInput | None = None
    fps: FpsInput = FpsInput()
    first_frame: NamedInput | None = None
    last_frame: NamedInput | None = None

    def fields(self) -> list[tuple[str, str]]:
        named = [("video.duration", self.duration.field), ("video.fps", self.fps.field),
                 ("video.first_frame", self.first_frame.field if self.first_frame else None),
                 ("video.last_frame", self.last_frame.field if self.last_frame else None),
                 ("video.aspect_ratio", self.aspect_ratio.field if self.aspect_ratio else None),
                 ("video.resolution", self.resolution.field if self.resolution else None)]
        return [(role, field) for role, field in named if field]

    def why_not(self, spec: VideoSpec, from_image: bool) -> str | None:
        """Why the model cannot make `spec` (None: it can)."""
        if self.duration.seconds_for(spec.duration_s) is None:
            return f"no {spec.duration_s:g} s clips"
        if self.resolution is not None and spec.resolution not in self.resolution.values:
            return f"no {spec.resolution} clips"
        # From an image the clip takes the image's shape; the model needs no aspect ratio for it.
        if self.aspect_ratio is not None and spec.aspect_ratio not in self.aspect_ratio.values and not from_image:
            return f"no {spec.aspect_ratio} clips"
        if from_image and self.first_frame is None:
            return "no first frame input"
        return None


class ModelInputs(_Frozen):
    """The model's input schema as Genline writes to it. None for count, seed, negative
    prompt or steps: the model takes none (one image per call, no seed control, …)."""

    prompt_field: str = "prompt"
    size: SizeInput = SizeInput()
    count: CountInput | None = None
    seed: SeedInput | None = None
    negative_prompt: NamedInput | None = None
    steps: StepsInput | None = None
    # Inputs sent as they are (quality, output format, safety settings …).
    fixed: dict[str, Any] = {}
    # Template parameters the model takes, by the name it gives them.
    params: dict[str, str] = {}
    size_tolerance: float = Field(0.1, ge=0, lt=1)
    # A video model: how a clip's length, shape, rate and frames go in (None: an image model).
    video: VideoInputs | None = None
    # How the model carries a subject's identity: LoRA weights by URL, reference photos (identity_inputs.py).
    identity: IdentityInputs | None = None

    @model_validator(mode="after")
    def each_field_is_written_once(self) -> "ModelInputs":
        seen: dict[str, str] = {}
        for role, field in self._targets():
            if field in seen:
                raise ValueError(f"input field {field!r} is given by both {seen[field]} and {role}")
            seen[field] = role
        return self

    def _targets(self) -> list[tuple[str, str]]:
        targets = [("prompt_field", self.prompt_field)] + [("size", f) for f in self.size.fields()]
        for role in ("count", "seed", "negative_prompt", "steps"):
            value = getattr(self, role)
            if value is not None:
                targets.append((role, value.field))
        targets += [(f"fixed.{name}", name) for name in self.fixed]
        targets += [(f"params.{name}", field) for name, field in self.params.items()]
        if self.video is not None:
            targets += self.video.fields()
        if self.identity is not None:
            targets += self.identity.fields()
        return targets

    @property
    def max_count(self) -> int:
        return self.count.max if self.count else 1

    @property
    def default_steps(self) -> int | None:
        return self.steps.default if self.steps else None

    def can_make(self, width: int, height: int) -> bool:
        return within(self.size.plan(width, height)[1], (width, height), tolerance=self.size_tolerance)


def within(made: tuple[int, int], asked: tuple[int, int], *, tolerance: float) -> bool:
    """Whether each side of `made` is within `tolerance` (relative) of `asked`'s."""
    return all(abs(m - a) <= tolerance * a for m, a in zip(made, asked))


def _distance(size: tuple[int, int], asked: tuple[int, int]) -> tuple[float, float]:
    """Aspect ratio first, then area: how far a size is from the one asked."""
    ratio = abs(math.log((size[0] / size[1]) / (asked[0] / asked[1])))
    return round(ratio, 3), abs(math.log(size[0] * size[1] / (asked[0] * asked[1])))


def _nearest(sizes: tuple[str, ...], width: int, *, height: int) -> tuple[int, int]:
    return min((parse_size(size) for size in sizes), key=lambda s: _distance(s, (width, height)))
