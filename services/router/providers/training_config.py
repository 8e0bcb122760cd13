"""A trainer, declared under a provider's `trainer` in providers.yaml: how a subject's photos,
the training's steps and its trigger word go into the trainer's input, what a training costs,
how long it takes, and where its weights come out.

As the trainers publish their inputs (RESEARCH-wave6.md §1):

* fal `fal-ai/flux-lora-fast-training`: `images_data_url` (a zip, at least 4 images),
  `trigger_word`, `steps` (1–10000), `is_style` false for a subject (captions and a face mask
  made for it), `create_masks`; out `diffusers_lora_file` {url, content_type, file_name,
  file_size} and `config_file`.
* fal `fal-ai/flux-lora-portrait-trainer`: the same zip (at least 10), `trigger_phrase`,
  `steps` (2500), `subject_crop`; the same outputs.
* Replicate `ostris/flux-dev-lora-trainer`: `input_images` (a zip), `trigger_word`, `steps`
  (3–6000); a training pushes a new version to `destination` (a model that must exist) and
  answers `output {version, weights}`, the weights a tar holding one `.safetensors`.

The photos go as one zip (`images.style: zip`) or a list (`list`), by the URL of a copy the
provider keeps (`via: upload`, the default: uploaded to its storage, kept as long as the training
may run, deleted where its API can once the training ends) or a presigned link to a zip in the
internal bucket deleted once the training ends (`via: presigned`); never inline, where every
echo of the training (Replicate's webhooks carry its input) would carry them again. `weights`
is where the weights' URL is in the trainer's output (a
dotted path). `base` names the model family the weights are for: a model takes LoRAs of its
own base only (identity_inputs.LoraInput.base).
"""

from typing import Any, Literal

from pydantic import Field, model_validator

from services.router.providers.entry_parts import Frozen, ModelPin


class TrainerImages(Frozen):
    field: str = Field("images_data_url", min_length=1)
    style: Literal["zip", "list"] = "zip"
    via: Literal["upload", "presigned"] = "upload"
    min: int = Field(4, ge=1)
    max: int = Field(30, ge=1)


class TrainerSteps(Frozen):
    field: str = Field("steps", min_length=1)
    default: int = Field(1000, ge=1)
    min: int = Field(1, ge=1)
    max: int = Field(10_000, ge=1)

    @model_validator(mode="after")
    def default_within_bounds(self) -> "TrainerSteps":
        if not self.min <= self.default <= self.max:
            raise ValueError(f"steps.default ({self.default}) must lie in {self.min}..{self.max}")
        return self


class TrainerPrice(Frozen):
    """A training's list price: per run, per step, or both."""

    per_run_micro_usd: int = Field(0, ge=0)
    per_step_micro_usd: int = Field(0, ge=0)

    def micro_usd(self, steps: int) -> int:
        return self.per_run_micro_usd + self.per_step_micro_usd * steps


class TrainerConfig(Frozen):
    model: ModelPin
    base: str = Field(min_length=1)
    images: TrainerImages = TrainerImages()
    # Where the trigger word goes (fal's fast trainer: trigger_word; its portrait trainer: trigger_phrase).
    trigger_field: str | None = "trigger_word"
    steps: TrainerSteps | None = TrainerSteps()
    fixed: dict[str, Any] = {}
    price: TrainerPrice
    # How long a training takes: what planning counts on (a job whose deadline is nearer trains no
    # identity), and, for the local trainer, how long it does take.
    expected_s: float = Field(1200.0, gt=0)
    # A training still running this long after it was submitted is canceled, and failed.
    timeout_s: float = Field(3600.0, gt=0)
    poll_interval_s: float = Field(15.0, gt=0)
    # Where the weights' URL is in the finished training's output, as a dotted path.
    weights: str = Field("diffusers_lora_file.url", min_length=1)
    # Replicate: the model (`owner/name`, which must exist) a training pushes its version to.
    destination: str | None = None
    max_weights_bytes: int = Field(512 * 2**20, ge=1024)

    @property
    def steps_sent(self) -> int:
        return self.steps.default if self.steps is not None else 0

    @property
    def price_micro_usd(self) -> int:
        return self.price.micro_usd(self.steps_sent)

    def input_fields(self) -> list[str]:
        named = [self.images.field, self.trigger_field, self.steps.field if self.steps else None, *self.fixed]
        return [name for name in named if name]

    @model_validator(mode="after")
    def each_field_once(self) -> "TrainerConfig":
        fields = self.input_fields()
        if len(set(fields)) != len(fields):
            raise ValueError(f"trainer input fields are given twice: {sorted(fields)}")
        if self.images.via == "presigned" and self.images.style != "zip":
            raise ValueError("trainer.images.via presigned sends one zip: images.style must be zip")
        if self.timeout_s < self.expected_s:
            raise ValueError(f"trainer.timeout_s ({self.timeout_s}) is shorter than expected_s ({self.expected_s})")
        return self
