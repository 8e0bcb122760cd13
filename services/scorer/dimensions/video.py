"""Video clips (MP4, WebM): read as files first, then over time, then on sampled frames.

A clip is read in three stages, each paid for only when the one before passed (`tiers`
makes each its own step):

1. The container (`probe`: header and packets, nothing decoded): a video stream of a
   codec this platform plays, and what the file says compared with the job's video block:
   * container — 1 for a readable video stream of H.264, HEVC, VP9 or AV1 that holds what it
     declares, else 0: a file whose index declares frames that are not in it, or whose
     header declares a length it does not play, is damaged (cut or corrupt), and its length,
     rate and shape are not measured (a damaged file is not a short clip);
   * duration — the playing length (frames over rate) over the length asked;
   * frame_rate — |ln(rate / rate asked)|, only when the job asks a rate;
   * clip_aspect — |ln(aspect / aspect asked)|;
   * resolution — the short side over the short side asked.
2. Over time: one decoding pass over every frame, each shrunk to `SEQUENCE_SIDE` pixels a
   side, keeping only the frame before (measures need no downloaded model):
   * frozen — the longest run of frames showing one picture, as a share of the clip's
     frame changes: a frame is frozen when its mean absolute luma change from the frame
     `GAP` before is under `FROZEN_LEVELS` (over `GAP` frames a slow zoom adds up to a
     change, while a frozen picture, even re-encoded with grain, stays put);
   * black_frames — the share of frames whose pixels are nearly all black (FFmpeg's
     blackdetect defaults: 98 % of pixels at most 10 % luma);
   * scene_cuts — changes of content (PySceneDetect's content detector: mean absolute
     change of hue, saturation and value, 0-255, from `CUT_CONTENT`, at least
     `CUT_MIN_FRAMES` frames apart);
   * temporal_flicker — the mean absolute change of mean luminance (0-1) from one frame
     to the next (VBench's temporal flickering, on the frames' brightness so that motion
     does not read as flicker);
   * movement — optical flow (OpenCV's Farneback) from `GAP` frames before, at up to
     `FLOW_PAIRS` places: mean magnitude per frame, as a share of the frame's width per
     second. A still passed off as a clip reads 0.
3. Sampled frames: `VideoSampling.frames` frames spread evenly over the clip, first and
   last included, shrunk to `VideoSampling.side`, kept from the same decoding pass as one
   `ImageBatch` marked `clip`, which the other dimensions (Tier 1 per frame, faces,
   identity, moderation) measure as they measure an animated image's frames.

Memory is bounded whatever the clip's length: the few small frames before, and the sampled
frames. A file that is not a readable clip fails `container` and its other dimensions are
not measured; a frame that does not decode, or a decoder that reports damage it concealed,
makes the temporal dimensions unmeasurable (failed, with the decoder's word).
"""

import io
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

import av
import cv2
import numpy as np
import torch

from services.common.quality.dimensions import Dimension
from services.common.video import ClipError, ClipInfo, damage, probe, rgb_of
from services.scorer.dimensions.batch import ClipRequest, ImageBatch, ScoringContext, with_luma
from services.scorer.dimensions.measures import measure_of

PLAYABLE_CODECS = frozenset({"h264", "hevc", "vp9", "av1"})
CLIP_READS = ("container", "sequence")
SEQUENCE_SIDE = 160
# Frames are compared with the frame this many before: subpixel drifts (a slow zoom moves half
# a pixel a frame) add up to what the measures read on small frames.
GAP = 4
# Mean absolute luma change (levels, 0-255, on the small frames) from the frame GAP before
# under which a frame shows the same picture: H.264 repeats a frozen picture exactly (0), with
# grain of sigma 3 it reads 0.003-0.005; a 1.2x zoom over 10 s of a painting reads 0.18-0.39.
FROZEN_LEVELS = 0.05
BLACK_LEVEL = 0.10 * 255
BLACK_SHARE = 0.98
CUT_CONTENT = 27.0
CUT_MIN_FRAMES = 15
FLOW_PAIRS = 24


@dataclass(kw_only=True)
class OverTime:
    """What the pass over every frame found, frame by frame, without keeping the frames."""

    frames: int = 0
    black: int = 0
    frozen_run: int = 0
    frozen_from: int = 0  # frame changes already frozen when the current run began
    longest_frozen: int = 0  # frame changes
    cuts: int = 0
    last_cut: int = 0
    brightness_changes: list[float] = field(default_factory=list)
    flow: list[float] = field(default_factory=list)
    error: str | None = None


class SequenceReader:
    """Feeds an `OverTime` one small RGB frame at a time, holding the few frames before."""

    def __init__(self, flow_at: frozenset[int]) -> None:
        self.found = OverTime()
        self._flow_at = flow_at
        self._before: deque[np.ndarray] = deque(maxlen=GAP)
        self._hsv: np.ndarray | None = None
        self._brightness = 0.0

    def add(self, rgb: np.ndarray) -> None:
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int16)
        brightness = float(grey.mean()) / 255
        found, index = self.found, self.found.frames
        found.black += int(np.count_nonzero(grey <= BLACK_LEVEL) >= BLACK_SHARE * grey.size)
        if self._before and self._hsv is not None:
            self._frozen(float(cv2.absdiff(grey, self._before[0]).mean()) < FROZEN_LEVELS)
            found.brightness_changes.append(abs(brightness - self._brightness))
            content = float(np.abs(hsv - self._hsv).mean())
            if content >= CUT_CONTENT and index - found.last_cut >= CUT_MIN_FRAMES:
                found.cuts, found.last_cut = found.cuts + 1, index
            if index in self._flow_at:
                found.flow.append(_mean_flow(self._before[0], grey) / len(self._before))
        self._before.append(grey)
        self._hsv, self._brightness = hsv, brightness
        found.frames += 1

    def _frozen(self, frozen: bool) -> None:
        """A frame frozen against the one `len(_before)` before: that many frame changes show
        one picture; a run of such frames adds one change each."""
        found = self.found
        if not frozen:
            found.frozen_run = 0
            return
        if found.frozen_run == 0:
            found.frozen_from = len(self._before)
        found.frozen_run += 1
        found.longest_frozen = max(found.longest_frozen, found.frozen_from + found.frozen_run - 1)


def _mean_flow(before: np.ndarray, after: np.ndarray) -> float:
    """Mean optical-flow magnitude in pixels (Farneback with OpenCV's usual parameters)."""
    # None: OpenCV allocates the flow; its stubs want an array there.
    flow = cv2.calcOpticalFlowFarneback(before, after, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    return float(np.hypot(flow[..., 0], flow[..., 1]).mean())


class ClipReading:
    """One candidate read as a clip, stage by stage; what each stage found is kept for the
    next. `index` is the candidate's place in the scoring call."""

    clip = True  # measured as one input image of many frames, alone (as `ImageBatch.clip`)

    def __init__(self, index: int, data: bytes, *, context: ScoringContext) -> None:
        self.index = index
        self.data = data
        self.context = context
        self._sampled: ImageBatch | None = None
        self.sampled_ms: list[int] = []  # when each sampled frame shows, from the clip's start

    @cached_property
    def info(self) -> ClipInfo | None:
        """The file's header, or None (with the reason noted) when it is not a readable clip."""
        try:
            info = probe(self.data)
        except ClipError as error:
            self.context.note("container", str(error), index=self.index)
            return None
        describe(self, info)
        return info

    @cached_property
    def sequence(self) -> OverTime:
        """The pass over every frame, which also keeps the sampled frames."""
        info = self.info
        assert info is not None, "a clip is decoded only after its container check"
        sampling = self.context.video_sampling
        keep = sampling.positions(info.frames)
        reader = SequenceReader(flow_pairs(info.frames))
        kept: list[np.ndarray] = []
        try:
            for index, frame in enumerate(_decoded(self.data)):
                reader.add(rgb_of(frame, SEQUENCE_SIDE))
                if index in keep:
                    kept.append(with_luma(rgb_of(frame, sampling.side)))
                    self.sampled_ms.append(round(index * 1000 / info.fps) if info.fps else 0)
        except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
            reader.found.error = f"frame {reader.found.frames} does not decode: {error}"
        if kept and reader.found.error is None:
            planes = torch.from_numpy(np.stack(kept)).to(self.context.device)
            self._sampled = ImageBatch(indices=(self.index,) * len(kept), planes=planes, context=self.context, clip=True)
        told(self, reader.found, info=info)
        return reader.found

    def sampled(self) -> ImageBatch | None:
        """The sampled frames, decoded; None when the clip cannot be decoded."""
        if self.info is None or self.sequence.error is not None:
            return None
        return self._sampled

    @cached_property
    def damage(self) -> str | None:
        """How the file disagrees with what it declares (`video.damage`), or None."""
        return damage(self.info) if self.info is not None else None

    def value_of(self, dimension: Dimension) -> float | None:
        """A container or temporal dimension's value, checked against its declared range; None
        (not measured) for what the container declares of a damaged file, whose `container`
        check fails naming the damage: its length is no clip's length."""
        if self.damage is not None and dimension.reads == "container" and dimension.name != "container":
            return None
        value = float(torch.as_tensor(measure_of(dimension)(self)).reshape(-1)[0])
        if (dimension.lowest is not None and value < dimension.lowest) or (
                dimension.highest is not None and value > dimension.highest):
            raise ValueError(f"dimension {dimension.name!r} gave a value outside its declared range"
                             f" {dimension.lowest} to {dimension.highest}")
        return value


def tell_worst_frames(reading: ClipReading, dimensions: list[Dimension], *, rows: list[list[float]]) -> None:
    """Where in the clip a dimension that keeps its worst frame found it, for its reason."""
    for dimension, row in zip(dimensions, rows, strict=True):
        measured = [(value, position) for position, value in enumerate(row) if not math.isnan(value)]
        if dimension.over_frames == "mean" or len(measured) < 2:
            continue
        pick = min if dimension.over_frames == "min" else max
        _, position = pick(measured)
        reading.context.note(dimension.name, f"worst of {len(row)} sampled frames at"
                             f" {reading.sampled_ms[position] / 1000:.2f} s", index=reading.index)


def flow_pairs(frames: int) -> frozenset[int]:
    """The frames whose flow from GAP frames before (fewer at the start) is measured: up to
    FLOW_PAIRS, spread over the clip."""
    first = min(GAP, frames - 1)
    if frames - first <= FLOW_PAIRS:
        return frozenset(range(max(1, first), frames))
    return frozenset(first + round(i * (frames - 1 - first) / (FLOW_PAIRS - 1)) for i in range(FLOW_PAIRS))


def _decoded(data: bytes) -> Any:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # Damage the decoder would conceal (and only log) stops decoding instead: its error is
        # the evidence. Not FFmpeg's log: turning it on lets the decoder's own threads call back
        # into Python, which deadlocks threaded decoding (PyAV keeps it off for that reason).
        stream.codec_context.options = {"err_detect": "explode"}
        yield from container.decode(stream)


def _of_clip(compute: Callable[[ClipReading], float]) -> Callable[[Any], torch.Tensor]:
    """A measure of a clip's reading; a still (or an animated image's frames) has nothing to
    show it: NaN, which fails with the dimension's hint."""
    def measure(source: Any) -> torch.Tensor:
        if isinstance(source, ClipReading):
            return torch.tensor([compute(source)], dtype=torch.float64)
        return torch.full((source.size,), math.nan, dtype=torch.float64)
    return measure


def _container(compute: Callable[[ClipInfo, ClipRequest | None], float]) -> Callable[[ClipReading], float]:
    def measured(reading: ClipReading) -> float:
        return math.nan if reading.info is None else compute(reading.info, reading.context.requested_clip)
    return measured


def _over_time(compute: Callable[[OverTime, ClipInfo], float]) -> Callable[[ClipReading], float]:
    def measured(reading: ClipReading) -> float:
        info = reading.info
        if info is None:  # measured in one step with the container (score_all): nothing to decode
            return math.nan
        found = reading.sequence
        if found.error is not None:
            for name in ("frozen", "black_frames", "scene_cuts", "temporal_flicker", "movement"):
                reading.context.note(name, found.error, index=reading.index)
            return math.nan
        return compute(found, info)
    return measured


def _playable(info: ClipInfo, _: ClipRequest | None) -> float:
    playable = info.codec in PLAYABLE_CODECS and info.frames > 0 and info.width > 0 and damage(info) is None
    return 1.0 if playable else 0.0


def _duration(info: ClipInfo, asked: ClipRequest | None) -> float:
    assert asked is not None  # waived without a video block
    return info.duration_ms / 1000 / asked.duration_s


def _rate(info: ClipInfo, asked: ClipRequest | None) -> float:
    assert asked is not None and asked.fps  # waived without an asked rate
    return abs(math.log(info.fps / asked.fps)) if info.fps > 0 else math.nan


def _aspect(info: ClipInfo, asked: ClipRequest | None) -> float:
    assert asked is not None
    return abs(math.log((info.width / info.height) / (asked.width / asked.height)))


def _resolution(info: ClipInfo, asked: ClipRequest | None) -> float:
    assert asked is not None
    return min(info.width, info.height) / min(asked.width, asked.height)


def _longest_frozen(found: OverTime, _: ClipInfo) -> float:
    return found.longest_frozen / (found.frames - 1) if found.frames > 1 else 1.0


def _black_share(found: OverTime, _: ClipInfo) -> float:
    return found.black / found.frames if found.frames else 0.0


def _cuts(found: OverTime, _: ClipInfo) -> float:
    return float(found.cuts)


def _flicker(found: OverTime, _: ClipInfo) -> float:
    return sum(found.brightness_changes) / len(found.brightness_changes) if found.brightness_changes else 0.0


def _movement(found: OverTime, info: ClipInfo) -> float:
    """Mean flow in frame widths per second: the small frames' pixels over their width."""
    if not found.flow:
        return 0.0
    width = SEQUENCE_SIDE if info.width >= info.height else SEQUENCE_SIDE * info.width / info.height
    return sum(found.flow) / len(found.flow) / width * info.fps


readable_container = _of_clip(_container(_playable))
duration_ratio = _of_clip(_container(_duration))
frame_rate_error = _of_clip(_container(_rate))
aspect_error = _of_clip(_container(_aspect))
resolution_ratio = _of_clip(_container(_resolution))
longest_frozen_share = _of_clip(_over_time(_longest_frozen))
black_frame_share = _of_clip(_over_time(_black_share))
cut_count = _of_clip(_over_time(_cuts))
mean_brightness_change = _of_clip(_over_time(_flicker))
flow_magnitude = _of_clip(_over_time(_movement))

# Each measure under the name of the dimension it measures (`measures` registers them).
MEASURES = {
    "container": readable_container,
    "duration": duration_ratio,
    "frame_rate": frame_rate_error,
    "clip_aspect": aspect_error,
    "resolution": resolution_ratio,
    "frozen": longest_frozen_share,
    "black_frames": black_frame_share,
    "scene_cuts": cut_count,
    "temporal_flicker": mean_brightness_change,
    "movement": flow_magnitude,
}


def describe(reading: ClipReading, info: ClipInfo) -> None:
    """What a clip's container reasons add: what the file holds against what was asked."""
    note, asked = partial(reading.context.note, index=reading.index), reading.context.requested_clip
    note("container", f"{info.codec} in {info.format_name}, {info.frames} frames")
    if (damaged := damage(info)) is not None:
        why = f"damaged: {damaged}; the file does not decode as it declares (its length is not judged)"
        note("container", why)
        for name in ("duration", "frame_rate", "clip_aspect", "resolution"):
            note(name, "the file is damaged (see container)")
        return
    if asked is None:
        return
    note("duration", f"{info.duration_ms / 1000:.2f} s of the {asked.duration_s:g} s asked")
    for name in ("clip_aspect", "resolution"):
        note(name, f"{info.width}x{info.height} against {asked.width}x{asked.height} asked")
    if asked.fps:
        note("frame_rate", f"{info.fps:g} fps against {asked.fps:g} asked")


def told(reading: ClipReading, found: OverTime, *, info: ClipInfo) -> None:
    """What a clip's temporal reasons add: where it froze, how many frames were black."""
    note, fps = partial(reading.context.note, index=reading.index), info.fps or 1.0
    note("frozen", f"longest frozen run {found.longest_frozen / fps:.2f} s of {found.frames / fps:.2f} s")
    note("black_frames", f"{found.black} of {found.frames} frames black")
    note("scene_cuts", f"{found.cuts} cut(s) over {found.frames} frames")
    note("movement", f"optical flow at {len(found.flow)} frame changes")
