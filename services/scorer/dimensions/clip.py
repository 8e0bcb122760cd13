"""prompt_alignment: how well an image matches its prompt, by a CLIP model from disk.

The value is the cosine similarity of the CLIP image and text embeddings, in [-1, 1];
for OpenAI's ViT-B/32 a matching caption typically scores 0.25 to 0.35 and an unrelated
one below 0.2. The model is read with `from_pretrained` from a local directory only
(a `save_pretrained` folder: config, weights and tokenizer files); nothing is downloaded.
Images are prepared with tensor operations, no torchvision: the shorter side resized
(bicubic, antialiased) to the model's input size, a centre crop, CLIP's normalisation.
Without a model, or without a prompt, the dimension is unavailable.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from services.scorer.dimensions.batch import ImageBatch

if TYPE_CHECKING:  # transformers takes seconds to import: only for the checker here
    from transformers import CLIPModel, PreTrainedTokenizerBase

# OpenAI CLIP's normalisation, used when the folder has no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ClipModelError(ValueError):
    """The configured directory does not hold a loadable CLIP model and tokenizer."""


@dataclass(frozen=True)
class Preprocessing:
    """How a CLIP model wants its images: square, `input_size` a side, each channel
    normalised by its `mean` and `std`."""

    input_size: int
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    @classmethod
    def of(cls, path: Path, default_size: int) -> "Preprocessing":
        """From the folder's preprocessor_config.json, else the model's defaults."""
        config_file = path / "preprocessor_config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        crop = config.get("crop_size", default_size)
        size = crop.get("height", default_size) if isinstance(crop, dict) else int(crop)
        return cls(size, tuple(config.get("image_mean", CLIP_MEAN)), tuple(config.get("image_std", CLIP_STD)))


class PromptAligner:
    """A CLIP model (in evaluation mode) and its tokenizer on one device, the model's,
    embedding prompts and images."""

    def __init__(self, model: "CLIPModel", tokenizer: "PreTrainedTokenizerBase", *, preprocessing: Preprocessing) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.input_size = preprocessing.input_size
        self.device = model.device
        self.mean = torch.tensor(preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std, device=self.device).view(1, 3, 1, 1)
        from transformers import CLIPTextConfig  # loaded already: the model came from it

        text = model.config.text_config
        assert isinstance(text, CLIPTextConfig), "CLIPConfig makes its text config one"
        self.max_tokens = text.max_position_embeddings

    @classmethod
    def load(cls, directory: str | Path, device: torch.device) -> "PromptAligner":
        path = Path(directory)
        if not path.is_dir():
            raise ClipModelError(f"CLIP model directory {str(path)!r} does not exist")
        # transformers takes seconds to import; only scorers with a model pay for it.
        from transformers import AutoTokenizer, CLIPModel, CLIPVisionConfig

        try:
            model = CLIPModel.from_pretrained(path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as error:
            raise ClipModelError(f"no CLIP model could be loaded from {str(path)!r}: {error}") from error
        vision = model.config.vision_config
        assert isinstance(vision, CLIPVisionConfig), "CLIPConfig makes its vision config one"
        assert isinstance(vision.image_size, int), "a CLIP model's input is square: one side"
        # transformers wraps to() in a decorator whose type loses the bound model.
        on_device = model.to(device).eval()  # type: ignore[arg-type]
        return cls(on_device, tokenizer, preprocessing=Preprocessing.of(path, vision.image_size))

    @torch.inference_mode()
    def embed_text(self, prompt: str) -> torch.Tensor:
        """(D,) unit-length embedding of the prompt, truncated to the model's context."""
        tokens = self.tokenizer(
            [prompt], padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        hidden = self.model.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return F.normalize(self.model.text_projection(hidden.pooler_output), dim=-1)[0]

    @torch.inference_mode()
    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, D) unit-length embeddings of (B, 3, H, W) RGB images in [0, 1]."""
        hidden = self.model.vision_model(pixel_values=self.prepare(pixels))
        return F.normalize(self.model.visual_projection(hidden.pooler_output), dim=-1)

    def prepare(self, pixels: torch.Tensor) -> torch.Tensor:
        """Shorter side resized to the input size, centre-cropped square, normalised."""
        side = self.input_size
        height, width = pixels.shape[-2:]
        scale = side / min(height, width)
        resized_h, resized_w = max(side, round(height * scale)), max(side, round(width * scale))
        resized = F.interpolate(pixels, size=(resized_h, resized_w), mode="bicubic", antialias=True)
        top, left = (resized_h - side) // 2, (resized_w - side) // 2
        cropped = resized[:, :, top : top + side, left : left + side].clamp(0, 1)
        return ((cropped - self.mean) / self.std).contiguous()


def prompt_similarity(batch: ImageBatch) -> torch.Tensor:
    context = batch.context
    text = context.memo("prompt_embedding", lambda: context.clip.embed_text(context.prompt))
    similarity: torch.Tensor = context.clip.embed_images(batch.pixels) @ text
    return similarity


# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {"prompt_alignment": prompt_similarity}
