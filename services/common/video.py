"""Clips as files: read what an MP4 (or WebM) says about itself, decode its frames, write one.

Every service that touches a clip goes through here, with PyAV (FFmpeg in its wheel): the
router encodes the local provider's clips and checks every provider's, the scorer samples
frames to measure, delivery remuxes with the index first and re-encodes where a stage must.
Nothing a provider says about a clip is trusted: duration, frame rate, size and codec are
read from the file.

* `probe` reads the container and the video stream's header, and counts frames from the
  packets (demuxing, no decoding): cheap enough to run on every clip before anything else.
  `damage` compares what the file declares (its index's frames, its header's length) with
  what is in it: a cut or corrupt file, never a short clip. `decoded_count` decodes to count.
* `frames` decodes, yielding every `every`-th frame as RGB (optionally scaled down), and
  stops after `limit`: a measure that needs a few frames never decodes the rest.
* `encode` writes RGB frames as MP4 (H.264, yuv420p, `+faststart`) or WebM (VP9).
* `remux` copies the streams into an MP4 with `moov` ahead of `mdat`, without re-encoding.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

MP4 = "video/mp4"
WEBM = "video/webm"
VIDEO_MEDIA_TYPES = frozenset({MP4, WEBM})
# What each output codec is written with; H.264 plays everywhere, VP9 and AV1 are the
# royalty-free alternatives (in WebM or MP4).
ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "av1": "libsvtav1"}


class ClipError(ValueError):
    """The bytes are not a clip this platform can read: not a container, no video stream,
    or a stream that does not decode."""


@dataclass(frozen=True, kw_only=True)
class ClipInfo:
    """What a clip's file says about it."""

    container: str  # FFmpeg's demuxer names: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"
    codec: str  # h264, hevc, vp9, av1
    width: int
    height: int
    fps: float
    frames: int
    duration_ms: int
    index_first: bool  # MP4: `moov` ahead of `mdat`, so a player starts before the whole file
    declared_frames: int = 0  # what the index says (an MP4's sample table); 0 where it says nothing
    declared_ms: int = 0  # the length the header declares; 0 where it declares none

    @property
    def media_type(self) -> str:
        return WEBM if "webm" in self.container else MP4

    @property
    def format_name(self) -> str:
        """The container as people name it: MP4 or WebM (FFmpeg's demuxer says "mov,mp4,…")."""
        return "WebM" if self.media_type == WEBM else "MP4"


def damage(info: ClipInfo) -> str | None:
    """How the file disagrees with what it declares, or None: a cut or corrupt file whose index
    declares frames that are not there, or whose header declares a length it does not play.
    Such a file is damaged, not a short clip."""
    if info.declared_frames and info.frames + 1 < info.declared_frames:
        return f"its index declares {info.declared_frames} frames, {info.frames} are in the file"
    frame_ms = 1000 / info.fps if info.fps else 0
    if info.declared_ms and info.declared_ms - info.duration_ms > max(2 * frame_ms, 0.05 * info.declared_ms):
        return (f"its header declares {info.declared_ms / 1000:.2f} s, {info.duration_ms / 1000:.2f} s are in"
                " the file")
    return None


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its position in the clip and its pixels (RGB, height × width × 3)."""

    index: int
    t_ms: int
    rgb: np.ndarray


def looks_like_video(data: bytes) -> bool:
    """An ISO base media file (MP4: `ftyp` box first) or an EBML one (Matroska/WebM)."""
    return data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3"


def probe(data: bytes) -> ClipInfo:
    """The clip's container, codec, size, rate, frame count and duration, from its header
    and packets; `ClipError` when the file is not a readable clip."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = _video_stream(container)
            frames = sum(1 for packet in container.demux(stream) if packet.size)
            return ClipInfo(
                container=container.format.name,
                codec=stream.codec_context.codec.canonical_name,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=_rate(stream),
                frames=frames,
                duration_ms=_duration_ms(container, stream, frames=frames),
                index_first=index_first(data),
                declared_frames=max(int(stream.frames or 0), 0),
                declared_ms=_declared_ms(container, stream),
            )
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise ClipError(f"not a readable clip: {error}") from error


@dataclass(frozen=True)
class Sampling:
    """Which frames of a clip to read: every `every`-th, at most `limit` of them, scaled so
    their longer side is at most `max_side` (None: no limit, full size)."""

    every: int = 1
    limit: int | None = None
    max_side: int | None = None


@dataclass(frozen=True)
class Codec:
    """The encoder a clip is written with: `name` h264 or av1 (in MP4), vp9 (in WebM), at
    `quality`, the encoder's CRF (lower is better)."""

    name: str = "h264"
    quality: int = 23


def frames(data: bytes, sampling: Sampling = Sampling()) -> Iterator[Frame]:
    """Decode the clip, yielding the frames `sampling` names (RGB); `ClipError` when a frame
    does not decode."""
    every, limit = sampling.every, sampling.limit
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"
            yielded = 0
            for index, frame in enumerate(container.decode(stream)):
                if index % every:
                    continue
                yield Frame(index=index, t_ms=_frame_ms(frame), rgb=rgb_of(frame, sampling.max_side))
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise ClipError(f"a frame does not decode: {error}") from error


def decoded_count(data: bytes) -> int:
    """How many frames decode (none converted to pixels); a frame the decoder gives up on, or
    damage it would only conceal, ends the count there."""
    count = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = _video_stream(container)
            stream.codec_context.options = {"err_detect": "explode"}
            for _ in container.decode(stream):
                count += 1
    except (av.FFmpegError, ValueError, IndexError, EOFError):
        pass
    return count


def encode(rgb_frames: Iterable[np.ndarray], fps: float, *, codec: Codec = Codec()) -> bytes:
    """Write RGB frames (all one size, even sides) as a clip, an MP4's index first."""
    container_format = "webm" if codec.name == "vp9" else "mp4"
    with _written(container_format) as (path, options):
        with av.open(path, mode="w", format=container_format, options=options) as out:
            stream: Any = None
            for rgb in rgb_frames:
                if stream is None:
                    stream = _output_stream(out, codec, fps=fps)
                    stream.width, stream.height = rgb.shape[1], rgb.shape[0]
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
                out.mux(stream.encode(frame))
            if stream is None:
                raise ClipError("a clip needs at least one frame")
            out.mux(stream.encode(None))
        return Path(path).read_bytes()


def remux(data: bytes) -> bytes:
    """The clip's video stream copied, not re-encoded, into an MP4 whose index comes first."""
    try:
        with _written("mp4") as (path, options):
            with av.open(io.BytesIO(data), mode="r") as source, \
                    av.open(path, mode="w", format="mp4", options=options) as out:
                stream = _video_stream(source)
                copy = out.add_stream_from_template(stream)
                for packet in source.demux(stream):
                    if packet.dts is None:
                        continue
                    packet.stream = copy
                    out.mux(packet)
            return Path(path).read_bytes()
    except (av.FFmpegError, ValueError, IndexError, EOFError) as error:
        raise ClipError(f"cannot remux the clip: {error}") from error


def index_first(data: bytes) -> bool:
    """An MP4 whose `moov` box (the index) comes before its `mdat` box (the media)."""
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        if kind in (b"moov", b"mdat"):
            return kind == b"moov"
        if size == 1 and position + 16 <= len(data):
            size = int.from_bytes(data[position + 8:position + 16], "big")
        if size < 8:
            return False
        position += size
    return False


@contextmanager
def _written(container_format: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch file to write a clip to: `+faststart` moves the index ahead of the media by
    reading the finished file back, which FFmpeg does by its name, so not in memory."""
    with tempfile.TemporaryDirectory(prefix="genline-clip-") as folder:
        options = {"movflags": "+faststart"} if container_format == "mp4" else {}
        yield str(Path(folder) / f"clip.{container_format}"), options


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        raise ClipError("the file has no video stream")
    return container.streams.video[0]


def _output_stream(out: Any, codec: Codec, *, fps: float) -> Any:
    """A YUV 4:2:0 video stream of `out`; the caller sets its size from the first frame."""
    if codec.name not in ENCODERS:
        raise ClipError(f"no encoder for {codec.name!r}; one of {sorted(ENCODERS)}")
    stream = out.add_stream(ENCODERS[codec.name], rate=Fraction(fps).limit_denominator(1001))
    stream.pix_fmt = "yuv420p"
    stream.options = {"crf": str(codec.quality)} | ({"preset": "veryfast"} if codec.name == "h264" else {})
    return stream


def _rate(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return round(float(rate), 3) if rate else 0.0


def _duration_ms(container: Any, stream: Any, *, frames: int) -> int:
    """What plays: the frames there are at the stream's rate (a cut-off file's header still
    claims its whole length), else what the header says."""
    rate = _rate(stream)
    if rate and frames:
        return int(round(frames / rate * 1000))
    if stream.duration is not None and stream.time_base:
        return int(round(float(stream.duration * stream.time_base) * 1000))
    if container.duration is not None:
        return int(round(container.duration / 1000))
    return 0


def _declared_ms(container: Any, stream: Any) -> int:
    """The length the file's header declares: the stream's, else the container's; 0 for none."""
    if stream.duration is not None and stream.time_base:
        return int(round(float(stream.duration * stream.time_base) * 1000))
    if container.duration is not None:
        return int(round(container.duration / 1000))
    return 0


def _frame_ms(frame: Any) -> int:
    if frame.pts is None or frame.time_base is None:
        return 0
    return int(round(float(frame.pts * frame.time_base) * 1000))


def rgb_of(frame: Any, max_side: int | None = None) -> np.ndarray:
    """A decoded frame's pixels (RGB), scaled so its longer side is at most `max_side`."""
    if max_side and max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        frame = frame.reformat(width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale)))
    rgb: np.ndarray = frame.to_ndarray(format="rgb24")
    return rgb
