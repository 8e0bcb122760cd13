"""Clips as files: what `services.common.video` reads from real MP4 and WebM files it writes
with the FFmpeg in PyAV's wheel, and how it refuses what is not a clip."""

import numpy as np
import pytest

from services.common import video


def _frames(count: int, width: int = 320, height: int = 180) -> list[np.ndarray]:
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    return [np.broadcast_to(np.roll(ramp, 4 * i, axis=1), (height, width, 3)).copy() for i in range(count)]


def test_an_encoded_mp4_reads_back_as_asked() -> None:
    clip = video.encode(_frames(36), fps=12)

    info = video.probe(clip)

    assert (info.codec, info.width, info.height, info.frames, info.fps) == ("h264", 320, 180, 36, 12.0)
    assert info.duration_ms == 3000
    assert info.index_first and info.media_type == video.MP4
    assert video.looks_like_video(clip)


def test_frames_are_sampled_and_stop_at_the_limit() -> None:
    clip = video.encode(_frames(24), fps=24)

    sampled = list(video.frames(clip, video.Sampling(every=6, limit=3, max_side=160)))

    assert [frame.index for frame in sampled] == [0, 6, 12]
    assert [frame.t_ms for frame in sampled] == [0, 250, 500]
    assert sampled[0].rgb.shape == (90, 160, 3)


def test_a_cut_off_clip_plays_for_the_frames_it_has_whatever_its_header_claims() -> None:
    clip = video.encode(_frames(48), fps=24)

    info = video.probe(clip[: len(clip) // 2])

    assert info.frames < 48 and info.duration_ms < 2000


@pytest.mark.parametrize("data", [b"", b"not a clip at all", b"\x00\x00\x00\x18ftypisom" + bytes(200)])
def test_what_is_not_a_clip_is_refused(data: bytes) -> None:
    with pytest.raises(video.ClipError):
        video.probe(data)


def test_remux_puts_the_index_first_without_reencoding() -> None:
    webm = video.encode(_frames(12), 12, codec=video.Codec("vp9"))
    assert not video.index_first(webm)

    mp4 = video.remux(webm)

    info = video.probe(mp4)
    assert info.index_first and info.codec == "vp9" and info.frames == 12


def test_a_clip_cut_halfway_is_damaged_by_what_its_index_declares() -> None:
    """An MP4 whose file ends halfway, between two frames: its index still declares every
    frame and the whole length; the frames in the file decode, and are fewer."""
    from tests.router.video_apis import cut_between_frames

    clip = video.encode(_frames(72), fps=24)

    whole, cut = video.probe(clip), video.probe(cut_between_frames(clip))

    assert (whole.declared_frames, whole.declared_ms, video.damage(whole)) == (72, 3000, None)
    assert (cut.declared_frames, cut.frames) == (72, 36)
    assert video.damage(cut) == "its index declares 72 frames, 36 are in the file"
    assert video.decoded_count(clip) == 72 and video.decoded_count(cut_between_frames(clip)) == 36
