"""A delivered video clip, on real files (PyAV encodes the sources, decodes what delivery
made): an MP4 with its index first, its stream copied when nothing needs its frames, and
re-encoded (H.264/yuv420p, or the codec the template names) for a visible watermark, a frame
rate, a size or a bitrate cap, or a stream browsers do not all play; its poster the sharpest
sampled frame; signed last, with the mark in the poster."""

import io
from datetime import UTC, datetime
from uuid import UUID, uuid4

import av
import numpy as np
import pytest
from PIL import Image

from services.common import video, watermark
from services.common.provenance import new_signing_credentials, read_manifest
from services.common.templates import ClipDelivery, Delivery, Watermark
from services.delivery import clips, domain, provenance
from services.delivery.postprocess import UnpublishableImage
from tests.common.test_watermark import photograph

CREDENTIALS = new_signing_credentials("test deployment")
WIDTH, HEIGHT, FPS = 320, 192, 24


def scene(count: int = 24, width: int = WIDTH, height: int = HEIGHT, seed: int = 3) -> list[np.ndarray]:
    """A textured picture moving a few pixels a frame, as generated video does."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width + 4 * count]
    base = np.stack([120 + 60 * np.sin(xx / 17), 110 + 50 * np.cos(yy / 13), 100 + 40 * np.sin((xx + yy) / 29)], -1)
    base = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    return [base[:, 4 * i: 4 * i + width] for i in range(count)]


def written(frames: list[np.ndarray], fps: float = FPS, *, codec: str = "libx264", pix_fmt: str = "yuv420p",
            crf: int = 23) -> bytes:
    """A clip as a provider might send one: an MP4 with its index last."""
    out_buffer = io.BytesIO()
    with av.open(out_buffer, mode="w", format="mp4") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        stream.options = {"crf": str(crf)}
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def with_sound(frames: list[np.ndarray], fps: int = FPS) -> bytes:
    """An MP4 with pictures and AAC sound (a 440 Hz tone) as long as they are, as Veo's are."""
    out_buffer = io.BytesIO()
    with av.open(out_buffer, mode="w", format="mp4") as out:
        pictures = out.add_stream("libx264", rate=fps)
        pictures.width, pictures.height, pictures.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        for rgb in frames:
            out.mux(pictures.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(pictures.encode(None))
        samples = int(48000 * len(frames) / fps)
        tone = np.sin(2 * np.pi * 440 * np.arange(samples) / 48000).astype(np.float32) * 0.3
        for start in range(0, samples, 1024):
            chunk = np.ascontiguousarray(np.tile(tone[start:start + 1024], (2, 1)))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return out_buffer.getvalue()


def sound_packets(clip: bytes) -> list[bytes]:
    with av.open(io.BytesIO(clip)) as container:
        if not container.streams.audio:
            return []
        return [bytes(packet) for packet in container.demux(container.streams.audio[0]) if packet.size]


def decoded(clip: bytes) -> list[np.ndarray]:
    return [frame.rgb for frame in video.frames(clip)]


def stream_of(clip: bytes) -> tuple[str, str]:
    with av.open(io.BytesIO(clip)) as container:
        context = container.streams.video[0].codec_context
        return context.codec.name, context.pix_fmt


def test_a_clip_with_its_index_last_is_remuxed_index_first_frame_for_frame():
    source = written(scene())
    assert not video.index_first(source)

    done = clips.postprocess(source, Delivery())

    clip = done.image
    assert clip.media_type == "video/mp4" and video.index_first(clip.data)
    assert (clip.codec, clip.width, clip.height, clip.frames, clip.fps) == ("h264", WIDTH, HEIGHT, 24, 24.0)
    assert clip.duration_ms == 1000
    # Stream copy: every decoded frame is the source's exactly; an encode would change them.
    assert all(np.array_equal(a, b) for a, b in zip(decoded(source), decoded(clip.data), strict=True))


def test_a_webm_vp9_clip_becomes_an_mp4_keeping_its_vp9_stream():
    source = video.encode(scene(12), FPS, video.Codec("vp9"))
    assert video.probe(source).media_type == "video/webm"

    clip = clips.postprocess(source, Delivery()).image

    assert video.probe(clip.data).container.startswith("mov,mp4") and clip.codec == "vp9"
    assert all(np.array_equal(a, b) for a, b in zip(decoded(source), decoded(clip.data), strict=True))


def test_a_visible_watermark_re_encodes_to_h264_yuv420p_with_the_mark_on_every_frame():
    source = video.encode(scene(12), FPS)
    mark = Watermark(text="Genline", opacity=1.0, position="bottom-right")

    clip = clips.postprocess(source, Delivery(watermark=mark)).image

    assert stream_of(clip.data) == ("h264", "yuv420p") and video.index_first(clip.data)
    assert clip.frames == 12
    plain, marked = decoded(source), decoded(clip.data)
    corner = (slice(HEIGHT - 22, HEIGHT - 4), slice(WIDTH - 70, WIDTH - 4))  # where the text is drawn
    elsewhere = (slice(0, HEIGHT // 2), slice(0, WIDTH // 2))
    for before, after in zip(plain, marked, strict=True):
        changed = np.abs(before.astype(int) - after.astype(int))
        assert changed[corner].mean() > 4 * changed[elsewhere].mean()  # the text, not codec noise


def test_a_frame_rate_change_blends_the_frames_between_and_keeps_the_length():
    ramp = [np.full((HEIGHT, WIDTH, 3), 10 * i, np.uint8) for i in range(24)]  # 0 … 230 over one second
    source = written(ramp, crf=0)

    clip = clips.postprocess(source, Delivery(clip=ClipDelivery(fps=30))).image

    assert clip.fps == 30 and clip.frames == 30 and clip.duration_ms == 1000
    levels = [float(rgb.mean()) for rgb in decoded(clip.data)]
    # Frame k of 30 fps lies at source frame k * 24 / 30: between two of them, their blend.
    assert levels == pytest.approx([10 * min(23, k * 24 / 30) for k in range(30)], abs=3)


def test_a_size_cap_scales_down_and_keeps_the_aspect_with_even_sides():
    clip = clips.postprocess(written(scene(6)), Delivery(clip=ClipDelivery(max_side=200))).image

    assert (clip.width, clip.height) == (200, 120) and clip.codec == "h264"


def test_a_clip_already_within_its_caps_is_only_remuxed():
    source = written(scene(6))
    kbps = clips.bitrate_kbps(source, video.probe(source))

    plan = clips.planned(clips.Source(source, video.probe(source), "yuv420p", kbps),
                         Delivery(clip=ClipDelivery(max_side=WIDTH, max_kbps=int(kbps) + 100, fps=24, codec="h264")))

    assert plan.reasons == () and plan.codec == "h264"


def test_a_bitrate_cap_holds_the_delivered_bitrate_under_it():
    noisy = [np.random.default_rng(i).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for i in range(96)]
    source = written(noisy, crf=5)
    assert clips.bitrate_kbps(source, video.probe(source)) > 4000

    clip = clips.postprocess(source, Delivery(clip=ClipDelivery(max_kbps=800))).image

    assert clips.bitrate_kbps(clip.data, video.probe(clip.data)) <= 800 * 1.1
    assert clip.frames == 96 and clip.codec == "h264"


@pytest.mark.parametrize("codec", ["vp9", "av1"])
def test_a_template_may_ask_for_a_royalty_free_codec_still_in_mp4_index_first(codec):
    clip = clips.postprocess(written(scene(6)), Delivery(clip=ClipDelivery(codec=codec))).image

    assert clip.codec == codec and clip.media_type == "video/mp4" and video.index_first(clip.data)
    assert stream_of(clip.data)[1] == "yuv420p" and clip.frames == 6


def test_a_stream_browsers_do_not_all_play_is_re_encoded_to_yuv420p():
    source = written(scene(6), pix_fmt="yuv444p")  # H.264 High 4:4:4: Chrome and Safari refuse it

    clip = clips.postprocess(source, Delivery()).image

    assert stream_of(clip.data) == ("h264", "yuv420p")


@pytest.mark.parametrize("delivery", [Delivery(), Delivery(watermark=Watermark(text="Genline"))],
                         ids=["remuxed", "re-encoded"])
def test_a_clip_s_sound_is_copied_as_it_is_whether_its_pictures_are_remuxed_or_re_encoded(delivery):
    source = with_sound(scene(24))
    assert len(sound_packets(source)) > 40

    clip = clips.postprocess(source, delivery).image

    assert sound_packets(clip.data) == sound_packets(source)
    assert video.index_first(clip.data) and clip.frames == 24 and clip.duration_ms == 1000


def test_the_poster_is_the_sharpest_sampled_frame_not_the_first_nor_the_middle():
    blurred = [np.asarray(Image.fromarray(frame).resize((16, 10)).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
               for frame in scene(24)]
    blurred[0] = np.zeros_like(blurred[0])  # a black first frame
    sharp = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    sharp[::2, ::2] = sharp[1::2, 1::2] = (230, 40, 40)  # a red checkerboard, all edges
    blurred[18] = sharp
    source = written(blurred, crf=10)

    done = clips.postprocess(source, Delivery())

    with Image.open(io.BytesIO(done.thumbnail.data)) as poster:
        assert poster.format == "WEBP" and max(poster.size) == 256
        red, green, blue = np.asarray(poster.convert("RGB")).reshape(-1, 3).mean(0)
    assert red > 2 * green and red > 2 * blue  # frame 18's checkerboard (blurred frames are not red)


def test_sharpness_ranks_a_detailed_frame_over_a_flat_and_a_black_one():
    detailed, flat, black = scene(1)[0], np.full((64, 64, 3), 128, np.uint8), np.zeros((64, 64, 3), np.uint8)

    assert clips.sharpness(detailed) > clips.sharpness(flat) == clips.sharpness(black) == 0


def test_bytes_that_are_not_a_clip_are_unpublishable_not_a_crash():
    source = written(scene(6))
    with pytest.raises(UnpublishableImage):
        clips.postprocess(b"\x00\x00\x00\x18ftypisom" + bytes(200), Delivery())
    with pytest.raises(UnpublishableImage):
        clips.postprocess(source[: len(source) // 3], Delivery())  # cut off before its index
    with pytest.raises(UnpublishableImage):
        clips.postprocess(video.encode(scene(6), FPS, video.Codec("vp9"))[:200], Delivery())  # a header and no frames


def panning(count: int = 24) -> list[np.ndarray]:
    """A 720p camera move over a real photograph, a few pixels a frame."""
    photo = np.asarray(Image.fromarray(photograph("chelsea")).resize((1600, 1000), Image.Resampling.BICUBIC))
    return [photo[80 + k: 80 + k + 720, 40 + 4 * k: 40 + 4 * k + 1280] for k in range(count)]


def platform_copy(clip: bytes) -> bytes:
    """What a video platform makes of a clip: scaled to 480 lines, re-encoded at half its bitrate."""
    info = video.probe(clip)
    kbps = len(clip) * 8 / info.duration_ms
    frames = [np.asarray(Image.fromarray(rgb).resize((round(info.width * 480 / info.height / 2) * 2, 480),
                                                     Image.Resampling.BICUBIC)) for rgb in decoded(clip)]
    out_buffer = io.BytesIO()
    with av.open(out_buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=round(info.fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.bit_rate = int(kbps * 1000 / 2)
        for rgb in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def test_a_delivered_clip_carries_the_mark_in_every_frame_is_signed_last_and_stays_index_first():
    source = written(panning(), crf=18)
    origin = provenance.Origin(UUID("5f0c1d2e-3a4b-4c5d-8e6f-708192a3b4c5"), 2, "local-video", "text-to-video",
                               datetime(2026, 11, 26, tzinfo=UTC), source, "local-clip", "2026-11")
    identity = provenance.mark_id(origin.job_id, 2)
    done = clips.postprocess(source, Delivery(), watermark.Embedding(identity))

    marked = provenance.Marker(CREDENTIALS).mark(done, origin)
    delivered = clips.described(marked.image.data)

    assert video.index_first(delivered.data)  # the manifest does not push the index behind the media
    reading = read_manifest(delivered.data, "video/mp4", CREDENTIALS.anchor_pem)
    assert reading.state == "Trusted"
    assert marked.manifest_label == provenance.manifest_label(origin.job_id, 2)
    assert (delivered.frames, delivered.duration_ms, delivered.fps, delivered.codec) == (24, 1000, 24.0, "h264")
    assert reading.job is not None and reading.job["job_id"] == str(origin.job_id)
    # Every frame carries the mark, and so does the poster; the manifest declares it over the clip's length.
    frames = decoded(delivered.data)
    assert [watermark.detect(frame).mark_id for frame in frames[::6]] == [identity] * 4
    with Image.open(io.BytesIO(marked.thumbnail.data)) as poster:
        assert watermark.detect(np.asarray(poster.convert("RGB"))).mark_id == identity
    assert marked.watermark_id == provenance.mark_hex(identity)
    soft = provenance.manifest(origin, marked)["assertions"][-1]
    assert soft["label"] == "c2pa.soft-binding"
    assert soft["data"]["blocks"][0]["scope"] == {"timespan": {"start": 0, "end": 1000}}
    # A platform's copy, at 480 lines and half the bitrate, is still read, from its frames together.
    copy = platform_copy(delivered.data)
    assert video.probe(copy).height == 480
    assert watermark.detect_frames(decoded(copy)[::3]).mark_id == identity


def test_what_a_receipt_says_of_a_clip_comes_from_the_file():
    done = clips.postprocess(written(scene(12)), Delivery())
    links = {"url": "https://s3/x", "expires_at": datetime(2026, 11, 26, tzinfo=UTC), "thumbnail_url": "https://s3/t"}
    key = domain.public_key(domain.job_folder("t1", datetime(2026, 11, 26, tzinfo=UTC), uuid4()), 1,
                            done.image.media_type)

    image = domain.delivered_image(domain.Published(1, key, domain.thumbnail_key(key, "image/webp"), links), done,
                                   Delivery())

    assert key.endswith("/1.mp4") and image.thumbnail_key.endswith("/1.thumb.webp")
    assert (image.media_type, image.frames, image.duration_ms, image.fps, image.codec) == \
           ("video/mp4", 12, 500, 24.0, "h264")
    assert (image.width, image.height, image.thumbnail_media_type) == (WIDTH, HEIGHT, "image/webp")
