"""Shared material for the scorer tests: real photographs, degraded copies, a scorer."""

import io
import json
import string

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from skimage import data as skimage_data
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from services.scorer.dimensions import Equipment, Scorer

CPU = torch.device("cpu")
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "camera", "rocket")


def rgb_photo(name: str) -> np.ndarray:
    image = getattr(skimage_data, name)()
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


def png(pixels: np.ndarray | Image.Image) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def blurred(pixels: np.ndarray, radius: float = 5) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius)))


def noisy(pixels: np.ndarray, sigma: float = 0.1, seed: int = 0) -> np.ndarray:
    """Gaussian noise of `sigma` on the 0..1 scale, clipped."""
    noise = np.random.default_rng(seed).normal(0.0, sigma * 255, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


def blown_out(pixels: np.ndarray) -> np.ndarray:
    """Doubled and lifted: every channel value of 45 or more saturates."""
    return np.clip(pixels.astype(np.int32) * 2 + 160, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    with Scorer(Equipment(device=CPU)) as shared:
        yield shared


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    return {name: rgb_photo(name) for name in PHOTO_NAMES}


def _write_tokenizer_files(folder) -> CLIPTokenizer:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[f"{letter}</w>"] = len(vocab)
    for token in ("ca", "cat</w>"):
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))


def _tiny_config(vocab_size: int) -> CLIPConfig:
    text = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "image_size": 32, "patch_size": 8}
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)


def save_tiny_clip(folder, tokenizer_source):
    """A tiny random CLIP and its tokenizer, saved with save_pretrained; nothing downloaded."""
    tokenizer = _write_tokenizer_files(tokenizer_source)
    torch.manual_seed(0)
    CLIPModel(_tiny_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"), tmp_path_factory.mktemp("tokenizer-source"))
