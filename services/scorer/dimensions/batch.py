"""Decoding images once and grouping them into batches the dimensions measure.

Images are decoded with OpenCV in a thread pool (decoding releases the GIL). What is
decoded depends on what the measured dimensions read: luminance alone when none reads
colour — for a JPEG that is its stored Y plane, two to three times faster to decode than
RGB — or RGB plus luminance. Luminance is always the decoder's own grey (BT.601 luma
rounded to 8 bits, for a JPEG its stored Y), whether or not colour is decoded beside it,
so that every dimension reading luma gives the same value however an image was decoded.
A tiered walk on the CPU decodes luma first and adds colour (`in_color`) only to the
stills that reach a step reading it: most rejected candidates never pay for colour.

An `ImageBatch` holds `planes`, uint8 shaped (B, H, W, C), C = 1 (luma) or 4 (R, G, B,
luma), of images of one size. On CUDA decoded images are grouped by size and stacked, up
to 128 images or 128 megapixels a batch, one host-to-device copy from pinned memory each.

A clip (an animated WebP) is decoded with Pillow into all its frames, which make a batch
of their own, in order, marked `clip`: dimensions measure each frame, and those that
compare frames (flicker) read them as a sequence. A video clip (MP4, WebM) is read by
`video` instead, which hands its sampled frames (`VideoSampling`) on as such a batch.
"""

import io
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice
from typing import Any, TypeVar, cast

import cv2
import numpy as np
import torch
from PIL import Image, ImageSequence

from services.scorer.dimensions.subject import Likeness

CUDA_BATCH_PIXELS = 1 << 27
CUDA_BATCH_IMAGES = 128
MAX_CLIP_FRAMES = 240
T = TypeVar("T")


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class VideoSampling:
    """How many frames of a clip the frame dimensions measure (None: every frame), and the
    longest side they are shrunk to (None: as decoded)."""

    frames: int | None = 8
    side: int | None = 640

    def positions(self, count: int) -> frozenset[int]:
        """The frames to measure of a clip of `count`: spread evenly, first and last included."""
        if self.frames is None or count <= self.frames:
            return frozenset(range(count))
        if self.frames == 1:
            return frozenset({0})
        return frozenset(round(i * (count - 1) / (self.frames - 1)) for i in range(self.frames))


@dataclass(frozen=True, kw_only=True)
class ClipRequest:
    """The clip a video job asks for: its length, its size (width, height) and, where the job
    asks one, its frame rate."""

    duration_s: float
    width: int
    height: int
    fps: float | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class ScoringContext:
    """What one scoring call knows besides the images: inputs, models and a memo.

    The memo holds what is computed once per call and shared by every batch, such as the
    prompt's text embedding or the reference photo's face. A job of a subject carries its
    `Likeness`, made once per job (`likeness`).
    """

    device: torch.device
    prompt: str | None = None
    reference: bytes | None = None
    requested_size: tuple[int, int] | None = None
    clip: Any = None
    moderated_classes: frozenset[str] = frozenset()
    requested_clip: ClipRequest | None = None
    video_sampling: VideoSampling = VideoSampling()
    subject: Likeness | None = None
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)
    _notes: dict[tuple[str, int | None], list[str]] = field(default_factory=dict, repr=False)
    _unmeasured: set[tuple[str, int]] = field(default_factory=set, repr=False)
    _lock: Any = field(default_factory=threading.RLock, repr=False)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once per call, whichever worker thread asks first."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return cast(T, self._memo[key])  # what compute() gave under this key

    def note(self, dimension: str, text: str, *, index: int | None = None) -> None:
        """Something a dimension's reason must add: how it was measured (for every image,
        `index` None) or what it found in input image `index`."""
        with self._lock:
            said = self._notes.setdefault((dimension, index), [])
            if text not in said:  # a batch's measure may say it again; a clip's stages add to it
                said.append(text)

    def not_measured(self, dimension: str, why: str, *, index: int) -> None:
        """The dimension does not apply to input image `index` (a clip with no face to keep):
        it is reported not measured, with `why`, never as a pass on whatever value it gave."""
        with self._lock:
            self._unmeasured.add((dimension, index))
        self.note(dimension, why, index=index)

    def unmeasured(self, dimension: str, index: int) -> bool:
        with self._lock:
            return (dimension, index) in self._unmeasured

    def notes_for(self, dimension: str, index: int) -> list[str]:
        with self._lock:
            return [text for key in ((dimension, None), (dimension, index)) for text in self._notes.get(key, [])]

    def decoded(self, index: int, data: bytes, *, color: bool) -> "ImageBatch":
        """Input image `index` as a batch of its own on this call's device: a still, or a clip's frames."""
        clip = is_clip(data)
        planes = decode_frames(index, data, color=color) if clip else decode_planes(index, data, color=color)[None]
        return ImageBatch(indices=(index,) * len(planes), planes=torch.from_numpy(planes).to(self.device),
                          context=self, clip=clip)


@dataclass(frozen=True, eq=False, kw_only=True)
class ImageBatch:
    """Decoded images of one size: `planes[j]` is input image `indices[j]`; or, with `clip`,
    the frames of one input image in order (`indices` names it once per frame)."""

    indices: tuple[int, ...]
    planes: torch.Tensor
    context: ScoringContext
    clip: bool = False
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def height(self) -> int:
        return self.planes.shape[1]

    @property
    def width(self) -> int:
        return self.planes.shape[2]

    @property
    def size(self) -> int:
        return self.planes.shape[0]

    @property
    def has_color(self) -> bool:
        return self.planes.shape[-1] == 4

    @cached_property
    def luma_u8(self) -> torch.Tensor:
        """(B, H, W) uint8 luma, contiguous: copied once out of the planes when colour was
        decoded too, since the luma checks read it many times over (a third faster so)."""
        return self.planes[..., -1].contiguous()

    @cached_property
    def luma(self) -> torch.Tensor:
        """(B, H, W) float32 luma on the 0..255 scale, contiguous."""
        return self.luma_u8.float()

    @cached_property
    def pixels(self) -> torch.Tensor:
        """(B, 3, H, W) float32 RGB in [0, 1], channels-last in memory."""
        if not self.has_color:
            raise RuntimeError("colour was not decoded for this batch")
        return self.planes[..., :3].permute(0, 3, 1, 2).float().div_(255)

    def memo(self, key: str, compute: Callable[["ImageBatch"], T]) -> T:
        """Compute once per batch what several dimensions share (statistics, faces)."""
        if key not in self._memo:
            self._memo[key] = compute(self)
        return cast(T, self._memo[key])  # what compute() gave under this key

    def kept(self) -> "ImageBatch":
        """This batch to measure later: the same planes and shared results, without the float
        copies of luma and colour (four bytes a pixel each), which are made again if read."""
        return ImageBatch(indices=self.indices, planes=self.planes, context=self.context, clip=self.clip, _memo=self._memo)

    def select(self, indices: Sequence[int]) -> "ImageBatch | None":
        """The batch of these input images only (all frames of a clip); None for none. What
        the dimensions shared image by image (a list per batch, such as the faces found)
        goes along, so that a later tier does not compute it again."""
        if list(dict.fromkeys(self.indices)) == list(indices):
            return self
        if not indices:
            return None
        wanted = set(indices)
        positions = [p for p, index in enumerate(self.indices) if index in wanted]
        planes = self.planes[positions[0] : positions[0] + 1] if len(positions) == 1 else self.planes[positions]
        per_image = {key: [value[p] for p in positions] for key, value in self._memo.items()
                     if isinstance(value, list) and len(value) == self.size}
        return ImageBatch(indices=tuple(self.indices[p] for p in positions), planes=planes, context=self.context, clip=self.clip, _memo=per_image)


class UndecodableImage(ValueError):
    """Input image `index` is not a complete image in a format OpenCV reads."""

    def __init__(self, index: int, detail: str = "not a complete image in a known format") -> None:
        super().__init__(f"image {index} could not be decoded: {detail}")
        self.index = index


def decode_planes(index: int, data: bytes, *, color: bool) -> np.ndarray:
    """(H, W, 1) luma or (H, W, 4) R, G, B, luma, uint8."""
    luma = _decoded(index, data, flags=cv2.IMREAD_GRAYSCALE)
    return with_luma(_decoded(index, data, flags=cv2.IMREAD_COLOR_RGB), luma) if color else luma[:, :, None]


def _decoded(index: int, data: bytes, *, flags: int) -> np.ndarray:
    try:
        decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except (cv2.error, TypeError, ValueError) as error:
        raise UndecodableImage(index, str(error)) from error
    if decoded is None:
        raise UndecodableImage(index)
    return decoded


def in_color(batch: "ImageBatch", data: bytes) -> "ImageBatch":
    """A still decoded in luma alone, now in colour too: its RGB decoded beside the luma it
    has, which is what a colour decode would give, so that what its dimensions shared so
    far (statistics, faces) stays valid. A batch that has colour is returned as it is."""
    if batch.has_color:
        return batch
    luma = batch.planes[0, :, :, 0].cpu().numpy()
    planes = with_luma(_decoded(batch.indices[0], data, flags=cv2.IMREAD_COLOR_RGB), luma)
    return ImageBatch(indices=batch.indices, planes=torch.from_numpy(planes[None]).to(batch.planes.device), context=batch.context,
                      clip=batch.clip, _memo=dict(batch._memo))


def is_clip(data: bytes) -> bool:
    """An animated WebP: the animation flag of its VP8X header (RIFF container, WebP spec)."""
    return data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8X" and len(data) > 20 and bool(data[20] & 0x02)


def decode_frames(index: int, data: bytes, *, color: bool) -> np.ndarray:
    """(F, H, W, 1) luma or (F, H, W, 4) R, G, B, luma of every frame of a clip, in order."""
    try:
        with Image.open(io.BytesIO(data)) as clip:
            count = getattr(clip, "n_frames", 1)
            frames = ([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(clip)]
                      if count <= MAX_CLIP_FRAMES else [])
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UndecodableImage(index, str(error)) from error
    if not frames:
        raise UndecodableImage(index, f"a clip of {count} frames; at most {MAX_CLIP_FRAMES} are scored")
    if color:
        return np.stack([with_luma(frame) for frame in frames])
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[:, :, None] for frame in frames])


def with_luma(rgb: np.ndarray, luma: np.ndarray | None = None) -> np.ndarray:
    # OpenCV writes the four planes in two passes (1.6 ms for a megapixel; NumPy's strided
    # copies took 5.3), which every candidate decoded in colour pays.
    planes = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    if luma is None or luma.shape != rgb.shape[:2]:
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cv2.mixChannels([luma], [planes], [0, 3])
    return planes


@dataclass(frozen=True)
class Readahead:
    """Images decoded in `pool` up to `window` images ahead of the one the caller measures:
    the window bounds memory."""

    pool: Executor
    window: int

    def decoded(self, images: Iterable[tuple[int, bytes]], color: bool) -> Iterator[tuple[int, np.ndarray]]:
        """(index, planes) of (index, encoded image) pairs, in order."""
        work = iter(images)
        pending = deque((index, self.pool.submit(decode_planes, index, data, color=color))
                        for index, data in islice(work, self.window))
        while pending:
            index, future = pending.popleft()
            for next_index, data in islice(work, 1):
                pending.append((next_index, self.pool.submit(decode_planes, next_index, data, color=color)))
            yield index, future.result()


def group_by_size(
    decoded: Iterable[tuple[int, np.ndarray]], max_pixels: int, *, max_images: int
) -> Iterator[list[tuple[int, np.ndarray]]]:
    """Runs of equal-sized images, each full as soon as it reaches the limits."""
    pending: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for index, planes in decoded:
        members = pending.setdefault(planes.shape, [])
        members.append((index, planes))
        pixels = len(members) * planes.shape[0] * planes.shape[1]
        if len(members) >= max_images or pixels >= max_pixels:
            yield pending.pop(planes.shape)
    yield from pending.values()


def joined(batches: Sequence[ImageBatch]) -> list[ImageBatch]:
    """The stills of equal size stacked into one batch each (on their device), clips alone;
    what every one of them shared image by image (the faces found) goes along."""
    groups: dict[tuple[int, ...], list[ImageBatch]] = {}
    alone = []
    for batch in batches:
        if batch.clip:
            alone.append(batch)
        else:
            groups.setdefault(tuple(batch.planes.shape[1:]), []).append(batch)
    return [group[0] if len(group) == 1 else _stacked(group) for group in groups.values()] + alone


def _stacked(group: list[ImageBatch]) -> ImageBatch:
    shared = set.intersection(*({k for k, v in b._memo.items() if isinstance(v, list) and len(v) == b.size}
                                for b in group))
    per_image = {key: [value for b in group for value in b._memo[key]] for key in shared}
    return ImageBatch(indices=tuple(i for b in group for i in b.indices), planes=torch.cat([b.planes for b in group]),
                      context=group[0].context, clip=False, _memo=per_image)


def stack_batch(
    members: list[tuple[int, np.ndarray]], context: ScoringContext
) -> ImageBatch:
    """One host-to-device copy of the stacked uint8 planes (pinned on CUDA)."""
    indices = tuple(index for index, _ in members)
    first = members[0][1]
    on_cuda = context.device.type == "cuda"
    host = torch.empty((len(members), *first.shape), dtype=torch.uint8, pin_memory=on_cuda)
    np.stack([planes for _, planes in members], out=host.numpy())
    planes = host.to(context.device, non_blocking=True) if on_cuda else host
    return ImageBatch(indices=indices, planes=planes, context=context)
