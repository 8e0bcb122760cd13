"""Post-processing of a delivered video clip, without I/O: an MP4 with its index first, and
a poster as its thumbnail.

* A clip is remuxed (its stream copied into an MP4 with `moov` ahead of `mdat`, so a player
  starts and seeks before the whole file has arrived), not re-encoded: every encode loses
  quality. It is re-encoded only where something needs its frames: the template's visible
  watermark (drawn with Pillow on each frame), a frame rate (`clip.fps`, frames blended
  between their neighbours), a size cap (`clip.max_side`), a bitrate cap (`clip.max_kbps`), a
  codec the template names (`clip.codec`), or a stream browsers do not all play (a codec
  other than H.264, VP9 or AV1; a pixel format other than 4:2:0). `reencode_reasons` says which.
* Re-encoded clips are H.264 (libx264, yuv420p) unless the template names VP9 or AV1, always
  in MP4 with `+faststart`.
* A clip's sound (its first audio stream, in a codec MP4 carries) is copied as it is, whether
  the pictures are remuxed or re-encoded: a frame-rate change keeps the clip's length, so
  the sound stays in step. Sound MP4 does not carry (Vorbis) is left out.
* Every frame carries the delivery's mark id in its invisible watermark (`services.common.watermark`,
  the same tile in each, so a detector reads the frames together), which is itself a reason to
  re-encode: a remuxed clip would carry none.
* The poster is the sharpest of up to `POSTER_SAMPLES` frames sampled evenly over the
  delivered clip (the variance of the Laplacian of its luma; a black or blurred frame has
  little), as the template's thumbnail: it shows what the clip shows, watermark included, and
  is marked again at its own size.

PyAV (FFmpeg in its wheel) and Pillow do the work; callers run it in a thread.
"""

import io
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from services.common import video, watermark
from services.common.templates import ClipDelivery, Delivery
from services.delivery.postprocess import Rendered, RenderedFiles, UnpublishableImage, thumbnail, watermarked

PLAYABLE_CODECS = frozenset({"h264", "vp9", "av1"})
PLAYABLE_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})
ENCODERS = video.ENCODERS
POSTER_SAMPLES = 12
POSTER_SIDE = 1024  # frames are measured (and the poster cut) at most this large
FPS_TOLERANCE = 0.01
MP4_SOUND_CODECS = frozenset({"aac", "mp3", "opus", "alac", "flac", "ac3", "eac3"})
# Frames carry the invisible watermark stronger than stills: the encoder smooths what moves,
# and a platform re-encodes at a lower bitrate again (at 1x, a clip re-encoded at half its
# bitrate and 480p lost the mark on one sample of three; at 1.5x on none).
VIDEO_BOOST = 1.5


@dataclass(frozen=True, kw_only=True)
class Source:
    """A clip as the candidate holds it, and what its file says of it: its header, its pixel
    format and its average bitrate."""

    data: bytes
    info: video.ClipInfo
    pix_fmt: str
    kbps: float

    @classmethod
    def read(cls, data: bytes) -> "Source":
        info = video.probe(data)
        return cls(data=data, info=info, pix_fmt=pixel_format(data), kbps=bitrate_kbps(data, info))


@dataclass(frozen=True)
class Shape:
    """A clip's pictures: their size and their rate."""

    width: int
    height: int
    fps: float


@dataclass(frozen=True, kw_only=True)
class ClipPlan:
    """What the delivered clip will be: its codec, its pictures' size and rate, the invisible
    watermark its frames carry (None: none), and why it is re-encoded (nothing: remuxed)."""

    codec: str
    shape: Shape
    reasons: tuple[str, ...]
    mark: watermark.Embedding | None = None


@dataclass(frozen=True, kw_only=True)
class Encoding:
    """How frames are encoded: the codec, at a rate, at CRF `quality`, held under `max_kbps`
    where given."""

    codec: str
    fps: float
    quality: int
    max_kbps: int | None


def postprocess(data: bytes, delivery: Delivery, *, mark: watermark.Embedding | None = None) -> RenderedFiles:
    """The clip to deliver (MP4, index first) and its poster, as the template's delivery says,
    every frame and the poster carrying the invisible watermark `mark` embeds, where given;
    `UnpublishableImage` when the bytes are not a clip that can be read."""
    try:
        source = Source.read(data)
        plan = planned(source, delivery, mark=mark)
        clip = reencoded(source, plan, delivery=delivery) if plan.reasons else remuxed(data)
        mark_hex = watermark.mark_hex(plan.mark.mark_id) if plan.mark is not None else None
        return RenderedFiles(image=described(clip), thumbnail=thumbnail(Image.fromarray(poster(clip)), delivery.thumbnail, mark=mark),
                         watermark_id=mark_hex)
    except video.ClipError as error:
        raise UnpublishableImage(f"not a clip delivery can publish: {error}") from error


def described(clip: bytes) -> Rendered:
    """The clip as its file says it is (size, frames, length, rate, codec), not as asked."""
    info = video.probe(clip)
    return Rendered(data=clip, media_type=video.MP4, width=info.width, height=info.height, frames=info.frames, duration_ms=info.duration_ms, fps=info.fps, codec=info.codec)


# ---- what is done to a clip -------------------------------------------------------------------


def planned(source: Source, delivery: Delivery, *, mark: watermark.Embedding | None = None) -> ClipPlan:
    info = source.info
    if info.fps <= 0 or info.frames == 0:  # nothing to play, or no rate to play it at
        raise video.ClipError(f"the clip has {info.frames} frames at {info.fps:g} fps")
    settings = delivery.clip
    fps = settings.fps if settings.fps and abs(settings.fps - info.fps) > FPS_TOLERANCE else info.fps
    shape = Shape(*capped_size(info.width, info.height, max_side=settings.max_side), fps)
    reasons = reencode_reasons(source, delivery, shape=shape)
    if mark is not None and watermark.can_carry(shape.width, shape.height):
        reasons = ("an invisible watermark", *reasons)
    else:
        mark = None
    codec = settings.codec or (info.codec if not reasons else "h264")
    return ClipPlan(codec=codec, shape=shape, reasons=reasons, mark=mark)


def reencode_reasons(source: Source, delivery: Delivery, *, shape: Shape) -> tuple[str, ...]:
    """Why the clip's frames must be encoded again to be delivered in `shape`; empty: a remux will do."""
    settings: ClipDelivery = delivery.clip
    info = source.info
    reasons = []
    if delivery.watermark is not None:
        reasons.append("a visible watermark")
    if shape.fps != info.fps:
        reasons.append(f"frame rate {info.fps:g} to {shape.fps:g}")
    if (shape.width, shape.height) != (info.width, info.height):
        reasons.append(f"size {info.width}x{info.height} past {settings.max_side}")
    if settings.max_kbps is not None and source.kbps > settings.max_kbps:
        reasons.append(f"bitrate {source.kbps:.0f} kb/s past {settings.max_kbps}")
    if settings.codec is not None and settings.codec != info.codec:
        reasons.append(f"codec {info.codec} to {settings.codec}")
    elif info.codec not in PLAYABLE_CODECS:
        reasons.append(f"codec {info.codec}, which browsers do not all play")
    if source.pix_fmt not in PLAYABLE_PIXEL_FORMATS:
        reasons.append(f"pixel format {source.pix_fmt}, which browsers do not all play")
    return tuple(reasons)


def capped_size(width: int, height: int, *, max_side: int | None) -> tuple[int, int]:
    """The clip's size with its longer side at most `max_side` and both sides even (4:2:0
    chroma needs even sides); as it is when it already fits."""
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    if scale == 1.0 and width % 2 == 0 and height % 2 == 0:
        return width, height
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def pixel_format(data: bytes) -> str:
    """The video stream's pixel format, from its header."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise video.ClipError("the file has no video stream")
            return str(container.streams.video[0].codec_context.pix_fmt or "")
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise video.ClipError(f"not a readable clip: {error}") from error


def bitrate_kbps(data: bytes, info: video.ClipInfo) -> float:
    """The file's average bitrate (kilobits a second), over what plays."""
    return len(data) * 8 / info.duration_ms if info.duration_ms else 0.0


def reencoded(source: Source, plan: ClipPlan, *, delivery: Delivery) -> bytes:
    """The clip's frames, scaled, resampled in time and watermarked as planned, encoded again.
    The encoder holds the rate under a cap over every second, but its buffer starts full, so
    a short clip may still average past it: then it is encoded once more under a cap lowered
    by the overshoot."""
    settings = delivery.clip
    encoding = Encoding(codec=plan.codec, fps=plan.shape.fps, quality=settings.quality, max_kbps=settings.max_kbps)
    clip = encoded_mp4(delivered_frames(source, plan, delivery=delivery), encoding, sound_from=source.data)
    if settings.max_kbps is not None:
        kbps = bitrate_kbps(clip, video.probe(clip))
        if kbps > settings.max_kbps:
            lowered = max(1, int(settings.max_kbps * settings.max_kbps / kbps))
            clip = encoded_mp4(delivered_frames(source, plan, delivery=delivery), replace(encoding, max_kbps=lowered),
                               sound_from=source.data)
    return clip


def delivered_frames(source: Source, plan: ClipPlan, *, delivery: Delivery) -> Iterator[np.ndarray]:
    shape, info = plan.shape, source.info
    frames: Iterator[np.ndarray] = (fitted(frame.rgb, shape.width, height=shape.height)
                                    for frame in video.frames(source.data, video.Sampling(max_side=max(shape.width, shape.height))))
    if shape.fps != info.fps:
        frames = resampled(frames, info.fps / shape.fps, count=max(1, round(info.frames * shape.fps / info.fps)))
    if delivery.watermark is not None:
        visible = delivery.watermark
        frames = (np.asarray(watermarked(Image.fromarray(rgb), visible)) for rgb in frames)
    if plan.mark is not None:
        invisible = plan.mark
        frames = (invisible(np.asarray(rgb)[..., :3], VIDEO_BOOST) for rgb in frames)
    return frames


def fitted(rgb: np.ndarray, width: int, *, height: int) -> np.ndarray:
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


def resampled(frames: Iterable[np.ndarray], step: float, *, count: int) -> Iterator[np.ndarray]:
    """`count` frames at `step` source frames apart, each blended from the two source frames
    around its time (weighted by nearness), so motion stays smooth at the new rate."""
    source = iter(frames)
    current = next(source)
    following = next(source, None)
    at = 0
    for k in range(count):
        position = k * step
        while following is not None and position >= at + 1:
            current, following, at = following, next(source, None), at + 1
        weight = position - at
        if following is None or weight < 1e-3:
            yield current
        else:
            yield blended(current, following, weight=weight)


def blended(first: np.ndarray, second: np.ndarray, *, weight: float) -> np.ndarray:
    mixed = first.astype(np.float32) * (1 - weight) + second.astype(np.float32) * weight
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def encoded_mp4(frames: Iterable[np.ndarray], encoding: Encoding, *, sound_from: bytes | None = None) -> bytes:
    """RGB frames as an MP4 (index first), encoded as `encoding` says, with the sound of the
    clip `sound_from` copied beside them.
    (`video.encode` writes VP9 in WebM, without sound; delivery's clips are MP4.)"""
    with written_mp4() as (path, options), av.open(path, mode="w", format="mp4", options=options) as out:
        stream: Any = None
        for rgb in frames:
            if stream is None:
                stream = output_stream(out, encoding, size=(rgb.shape[1], rgb.shape[0]))
                if sound_from is not None:
                    copy_sound(sound_from, out)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        if stream is None:
            raise video.ClipError("the clip has no frames")
        out.mux(stream.encode(None))
        out.close()
        return Path(path).read_bytes()


def remuxed(data: bytes) -> bytes:
    """The clip's video stream and its sound copied, not re-encoded, into an MP4 whose index
    comes first. (`video.remux` copies the pictures alone.)"""
    try:
        with written_mp4() as (path, options), av.open(io.BytesIO(data), mode="r") as source, \
                av.open(path, mode="w", format="mp4", options=options) as out:
            if not source.streams.video:
                raise video.ClipError("the file has no video stream")
            kept = [source.streams.video[0], *sound_of(source)]
            copies = {stream.index: out.add_stream_from_template(stream) for stream in kept}
            for packet in source.demux(kept):
                if packet.dts is None:
                    continue
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
            out.close()
            return Path(path).read_bytes()
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise video.ClipError(f"cannot remux the clip: {error}") from error


def sound_of(container: Any) -> list[Any]:
    """The clip's first audio stream when MP4 can carry its codec; else nothing."""
    audio = container.streams.audio
    return [audio[0]] if audio and audio[0].codec_context.name in MP4_SOUND_CODECS else []


def copy_sound(data: bytes, out: Any) -> None:
    """The sound of the clip `data` muxed into `out` as it is. The muxer interleaves it with
    the pictures written after it by their timestamps."""
    with av.open(io.BytesIO(data), mode="r") as source:
        sound = sound_of(source)
        if not sound:
            return
        copy = out.add_stream_from_template(sound[0])
        for packet in source.demux(sound[0]):
            if packet.dts is None:
                continue
            packet.stream = copy
            out.mux(packet)


@contextmanager
def written_mp4() -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch file to write an MP4 to: `+faststart` moves the index ahead of the media by
    reading the finished file back, which FFmpeg does by its name, so not in memory."""
    with tempfile.TemporaryDirectory(prefix="genline-delivery-") as folder:
        yield str(Path(folder) / "clip.mp4"), {"movflags": "+faststart"}


def output_stream(out: Any, encoding: Encoding, *, size: tuple[int, int]) -> Any:
    """`out`'s video stream for frames of `size` (width, height), encoded as `encoding` says."""
    codec, max_kbps = encoding.codec, encoding.max_kbps
    stream = out.add_stream(ENCODERS[codec], rate=Fraction(encoding.fps).limit_denominator(1001))
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    options = {"crf": str(encoding.quality)}
    if codec == "h264":
        options["preset"] = "veryfast"
    if max_kbps is not None:  # quality as asked, but held under the cap over every second (a capped CRF)
        options |= {"maxrate": f"{max_kbps}k", "bufsize": f"{max_kbps}k"}
        if codec == "vp9":  # libvpx caps a constrained-quality encode by its target bitrate
            options["b"] = f"{max_kbps}k"
    stream.options = options
    return stream


# ---- the poster -------------------------------------------------------------------------------


def poster(clip: bytes) -> np.ndarray:
    """The sharpest of up to `POSTER_SAMPLES` frames sampled evenly over the clip (RGB)."""
    total = video.probe(clip).frames
    sampled = video.frames(clip, video.Sampling(max(1, total // POSTER_SAMPLES), POSTER_SAMPLES, POSTER_SIDE))
    best = max(sampled, key=lambda frame: sharpness(frame.rgb), default=None)
    if best is None:
        raise video.ClipError("the clip has no frames")
    return best.rgb


def sharpness(rgb: np.ndarray) -> float:
    """The variance of the 4-neighbour Laplacian of the frame's luma (BT.601)."""
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    laplacian = luma[2:, 1:-1] + luma[:-2, 1:-1] + luma[1:-1, 2:] + luma[1:-1, :-2] - 4 * luma[1:-1, 1:-1]
    return float(laplacian.var()) if laplacian.size else 0.0
