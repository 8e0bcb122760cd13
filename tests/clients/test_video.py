"""The client with clips: a video job's request as the API takes it, a delivered clip's model
(duration, frame rate, codec, poster), and a clip downloaded from a real HTTP server that drops
the connection part-way: the download goes on from the bytes it has (`Range: bytes=N-`,
answered 206), and the file is the clip, checked against its sha256."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from genline_client import (
    NO_RETRIES,
    APIConnectionError,
    AsyncGenline,
    ChecksumMismatch,
    FirstFrame,
    Genline,
    Job,
    Video,
    _calls,
)
from services.common.video import probe
from tests.clients.clip_server import ClipServer, real_clip, serving

JOB_ID = "6f1c2e9a-3b4d-4c5e-8f70-112233445566"


@pytest.fixture(scope="module")
def clip() -> bytes:
    return real_clip()


def delivered(clip: ClipServer, sha256: str | None = None) -> Job:
    """A final job's view as the API shows it, its one clip at the server's link."""
    now = datetime.now(UTC)
    return Job.model_validate({
        "id": JOB_ID, "state": "succeeded", "template": "text-to-video", "prompt": "waves", "images": 1,
        "candidates": 2, "seed": 7, "created_at": now, "updated_at": now,
        "video": {"duration_s": 2, "aspect_ratio": "16:9", "resolution": "480p", "fps": 12},
        "outputs": [{"n": 1, "key": f"acme/2026/11/{JOB_ID}/1.mp4", "url": clip.url,
                     "expires_at": now + timedelta(hours=1), "sha256": sha256 or clip.sha256,
                     "size_bytes": len(clip.content), "media_type": "video/mp4", "width": 160, "height": 96,
                     "frames": 24, "duration_ms": 2000, "fps": 12.0, "codec": "h264",
                     "thumbnail_url": clip.url.replace(".mp4", ".thumb.webp"), "thumbnail_media_type": "image/webp"}]})


def client(clip: ClipServer, **options) -> Genline:
    return Genline(api_key="gl_test", base_url=clip.url.split("/acme")[0], sleep=lambda _: None, **options)


def test_a_download_cut_off_part_way_goes_on_from_the_bytes_it_has(clip, tmp_path):
    cut = len(clip) // 3
    with serving(ClipServer(clip, drop_first_after=cut)) as server, client(server) as api:
        [path] = api.jobs.download(delivered(server), tmp_path)

    assert path.name == f"{JOB_ID}-1.mp4" and path.read_bytes() == clip
    assert server.answers == [(None, 200, cut), (f"bytes={cut}-", 206, len(clip) - cut)]
    assert probe(path.read_bytes()).duration_ms == 2000  # a whole clip, not the third that came first
    assert list(tmp_path.iterdir()) == [path]  # no partial file left beside it


def test_the_async_client_goes_on_from_the_bytes_it_has_too(clip, tmp_path):
    cut = len(clip) // 2

    async def download(server: ClipServer):
        async def no_wait(_):
            return None

        async with AsyncGenline(api_key="gl_test", base_url=server.url.split("/acme")[0], sleep=no_wait) as api:
            return await api.jobs.download(delivered(server), tmp_path)

    with serving(ClipServer(clip, drop_first_after=cut)) as server:
        [path] = asyncio.run(download(server))

    assert path.read_bytes() == clip
    assert [status for _, status, _ in server.answers] == [200, 206]


def test_a_server_that_ignores_the_range_sends_it_all_again_and_the_file_is_still_the_clip(clip, tmp_path):
    with serving(ClipServer(clip, drop_first_after=len(clip) // 2, ranges=False)) as server, client(server) as api:
        [path] = api.jobs.download(delivered(server), tmp_path)

    assert path.read_bytes() == clip  # not the first half twice
    assert [status for _, status, _ in server.answers] == [200, 200]


def test_an_object_written_again_meanwhile_is_not_spliced_onto_the_old_bytes(clip, tmp_path):
    other = real_clip(seconds=1)
    with serving(ClipServer(clip, drop_first_after=len(clip) // 2, replaced_by=other)) as server, client(server) as api:
        job = delivered(server)
        with pytest.raises(ChecksumMismatch):  # the whole new clip came (If-Range), not the old clip's first half + the new one's tail
            api.jobs.download(job, tmp_path)

    [_, (asked, status, sent)] = server.answers
    assert asked == f"bytes={len(clip) // 2}-" and (status, sent) == (200, len(other))
    assert list(tmp_path.iterdir()) == []


def test_a_clip_that_does_not_match_its_hash_is_refused_and_nothing_is_left(clip, tmp_path):
    with serving(ClipServer(clip, drop_first_after=100)) as server, client(server) as api:
        with pytest.raises(ChecksumMismatch, match="clip 1"):
            api.jobs.download(delivered(server, sha256="0" * 64), tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_without_retries_a_broken_download_is_an_error_and_nothing_is_left(clip, tmp_path):
    with serving(ClipServer(clip, drop_first_after=100)) as server, client(server, retry=NO_RETRIES) as api:
        with pytest.raises(APIConnectionError):
            api.jobs.download(delivered(server), tmp_path)

    assert list(tmp_path.iterdir()) == [] and len(server.answers) == 1


def test_a_delivered_clip_reads_as_a_clip():
    job = delivered(ClipServer(b"", url="https://objects.example/acme/1.mp4"), sha256="a" * 64)
    [output] = job.outputs

    assert output.is_video and output.duration_s == 2.0 and (output.fps, output.codec, output.frames) == (12.0, "h264", 24)
    assert output.poster_url == "https://objects.example/acme/1.thumb.webp"
    assert job.video == {"duration_s": 2, "aspect_ratio": "16:9", "resolution": "480p", "fps": 12}
    still = output.model_copy(update={"media_type": "image/png"})
    assert not still.is_video and still.poster_url is None
    # A newer platform's fields are kept, not refused.
    assert Job.model_validate(job.model_dump() | {"clip_checks": {"new": True}}).outputs == job.outputs


def test_a_video_job_is_sent_as_the_api_takes_it():
    first = FirstFrame(job_id=uuid.UUID(JOB_ID), n=2)
    video = Video(duration_s=4, aspect_ratio="9:16", resolution="720p", fps=24, first_frame=first)
    call = _calls.create_job("the tide comes in", 1, template="image-to-video", idempotency_key=None, options={"candidates": 3, "video": video})
    as_dict = _calls.create_job("waves", 2, template="text-to-video", idempotency_key=None,
                                options={"video": {"duration_s": 4, "aspect_ratio": "16:9", "resolution": "480p"}})

    assert call.json == {"prompt": "the tide comes in", "images": 1, "template": "image-to-video", "candidates": 3,
                         "video": {"duration_s": 4.0, "aspect_ratio": "9:16", "resolution": "720p", "fps": 24,
                                   "first_frame": {"job_id": JOB_ID, "n": 2}}}
    assert as_dict.json["video"] == {"duration_s": 4.0, "aspect_ratio": "16:9", "resolution": "480p"}
    assert "video" not in _calls.create_job("a bicycle", 1, template=None, idempotency_key=None, options={"video": None}).json


@pytest.mark.parametrize("wrong", [{"duration_s": 0}, {"duration_s": 4, "aspect_ratio": "wide"},
                                   {"duration_s": 4, "resolution": "HD"}, {"duration_s": 4, "fps": 0},
                                   {"aspect_ratio": "16:9"}])
def test_a_video_request_that_cannot_be_right_is_refused_before_it_is_sent(wrong):
    with pytest.raises(ValueError):
        _calls.create_job("waves", 1, template="text-to-video", idempotency_key=None, options={"video": wrong})


def test_an_upload_names_what_its_bytes_are():
    assert _calls.upload(b"\xff\xd8\xff\xe0rest", None).headers == {"Content-Type": "image/jpeg"}
    assert _calls.upload(b"\x89PNG\r\n\x1a\nrest", None).headers == {"Content-Type": "image/png"}
    assert _calls.upload(b"RIFF\x10\x00\x00\x00WEBPVP8 ", None).headers == {"Content-Type": "image/webp"}
    assert _calls.upload(b"what is this", None).headers == {"Content-Type": "application/octet-stream"}
    assert _calls.upload(b"x", "image/png").content == b"x"
