"""`genline jobs submit --video …` against a real HTTP server that answers as the API does
(the job request and job view of the public API for clips): the request it sends (the
`video` object, the template a first frame implies, the photo uploaded first), what it
prints of a delivered clip (length, codec, rate, frames, link, poster), the clip it writes,
and the usage errors it refuses before sending anything."""

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from genline_cli.main import main
from services.common.video import probe
from tests.clients.clip_server import real_clip

JOB_ID = "0d7f3a52-9c1e-4b6a-8e2d-5f4a3b2c1d0e"
UPLOAD_ID = "5b0e6c1a-7d2f-4e8b-9a3c-1f2e3d4c5b6a"
STILL = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # only its first bytes matter here: the API screens photos


@dataclass
class FakeAPI:
    """What the API was sent, and the clip it delivers."""

    clip: bytes
    url: str = ""
    requests: list[tuple[str, str, dict, bytes]] = field(default_factory=list)

    def job_view(self) -> dict:
        now = datetime.now(UTC)
        info = probe(self.clip)
        return {"id": JOB_ID, "state": "succeeded", "template": "text-to-video", "prompt": "waves", "images": 1,
                "candidates": 2, "seed": 3, "created_at": now.isoformat(), "updated_at": now.isoformat(),
                "timestamps": {"submitted": now.isoformat(), "succeeded": now.isoformat()},
                "video": {"duration_s": 2, "aspect_ratio": "16:9", "resolution": "480p", "fps": 12},
                "outputs": [{"n": 1, "key": f"t/2026/11/{JOB_ID}/1.mp4", "url": f"{self.url}/public/1.mp4?sig=x",
                             "expires_at": (now + timedelta(hours=1)).isoformat(),
                             "sha256": hashlib.sha256(self.clip).hexdigest(), "size_bytes": len(self.clip),
                             "media_type": "video/mp4", "width": info.width, "height": info.height,
                             "frames": info.frames, "duration_ms": info.duration_ms, "fps": info.fps, "codec": info.codec,
                             "thumbnail_url": f"{self.url}/public/1.thumb.webp?sig=x",
                             "thumbnail_media_type": "image/webp"}],
                "billing": {"state": "settled", "reserved": 20, "charged": 10, "released": 10}}

    def answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        now = datetime.now(UTC).isoformat()
        if (method, path) == ("POST", "/v1/uploads"):
            return 201, "application/json", json.dumps({
                "id": UPLOAD_ID, "media_type": "image/png", "width": 640, "height": 360, "size_bytes": len(STILL),
                "sha256": hashlib.sha256(STILL).hexdigest(), "created_at": now, "url": f"/v1/uploads/{UPLOAD_ID}"}).encode()
        if (method, path) == ("POST", "/v1/jobs"):
            return 202, "application/json", json.dumps({"id": JOB_ID, "state": "submitted", "created_at": now,
                                                        "url": f"/v1/jobs/{JOB_ID}"}).encode()
        if path == f"/v1/jobs/{JOB_ID}":
            return 200, "application/json", json.dumps(self.job_view()).encode()
        if path.startswith(f"/v1/jobs/{JOB_ID}/events"):
            entry = {"seq": 1, "type": "state", "time": now, "payload": {"state": "succeeded"}}
            return 200, "application/json", json.dumps({"job_id": JOB_ID, "state": "succeeded", "data": [entry],
                                                        "next": None}).encode()
        if path.startswith("/public/1.mp4"):
            return 200, "video/mp4", self.clip
        # A platform without streams: the client polls the job and its log instead.
        return 404, "application/problem+json", json.dumps({"type": "/problems/not-found", "title": "Not found",
                                                            "status": 404}).encode()


def handler_for(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            self.respond(b"")

        def do_POST(self) -> None:  # noqa: N802
            self.respond(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        def respond(self, body: bytes) -> None:
            api.requests.append((self.command, self.path, dict(self.headers), body))
            status, media_type, content = api.answer(self.command, self.path)
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def clip() -> bytes:
    return real_clip()


@pytest.fixture
def api(clip, monkeypatch) -> Iterator[FakeAPI]:
    fake = FakeAPI(clip)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("GENLINE_API_URL", fake.url)
    monkeypatch.setenv("GENLINE_API_KEY", "gl_test")
    yield fake
    server.shutdown()
    server.server_close()
    thread.join()


def sent_job(api: FakeAPI) -> dict:
    [body] = [json.loads(body) for method, path, _, body in api.requests if (method, path) == ("POST", "/v1/jobs")]
    return body


def test_a_text_to_video_job_is_sent_as_the_api_takes_it(api, capsys):
    status = main(["jobs", "submit", "waves rolling onto a beach", "--video", "--duration", "4", "--aspect-ratio", "16:9",
                   "--resolution", "480p", "--fps", "24", "--candidates", "3", "--json"])

    assert status == 0
    assert sent_job(api) == {"prompt": "waves rolling onto a beach", "images": 1, "template": "text-to-video",
                             "candidates": 3,
                             "video": {"duration_s": 4.0, "aspect_ratio": "16:9", "resolution": "480p", "fps": 24}}
    assert json.loads(capsys.readouterr().out)["id"] == JOB_ID


def test_an_input_photo_is_uploaded_first_and_starts_an_image_to_video_clip(api, tmp_path):
    still = tmp_path / "beach.png"
    still.write_bytes(STILL)

    status = main(["jobs", "submit", "the tide comes in", "--video", "--duration", "4", "--resolution", "480p",
                   "--input", str(still)])

    assert status == 0
    upload = next(r for r in api.requests if r[:2] == ("POST", "/v1/uploads"))
    assert upload[2]["Content-Type"] == "image/png" and upload[3] == STILL
    assert sent_job(api) == {"prompt": "the tide comes in", "images": 1, "template": "image-to-video",
                             "input_upload": UPLOAD_ID, "video": {"duration_s": 4.0, "aspect_ratio": "16:9",
                                                                  "resolution": "480p"}}
    assert [r[:2] for r in api.requests] == [("POST", "/v1/uploads"), ("POST", "/v1/jobs")]


def test_a_delivered_image_as_first_frame_is_named_by_job_and_number(api):
    first = "6f1c2e9a-3b4d-4c5e-8f70-112233445566"
    status = main(["jobs", "submit", "she turns her head", "--video", "--duration", "2.5", "--aspect-ratio", "9:16",
                   "--first-frame", f"{first}:2", "--template", "motion"])

    assert status == 0
    assert sent_job(api)["template"] == "motion"  # the template asked for wins over the one implied
    assert sent_job(api)["video"] == {"duration_s": 2.5, "aspect_ratio": "9:16", "resolution": "720p",
                                      "first_frame": {"job_id": first, "n": 2}}


def test_a_followed_video_job_prints_its_clip_and_writes_it(api, clip, tmp_path, capsys):
    status = main(["jobs", "submit", "waves", "--video", "--duration", "2", "--resolution", "480p",
                   "--download", str(tmp_path / "out")])

    printed = capsys.readouterr().out
    info = probe(clip)
    assert status == 0
    assert f"{JOB_ID}  succeeded  text-to-video  1/1 clips" in printed
    assert "clips asked: 2 s, 16:9, 480p, 12 fps" in printed
    clip_line = next(line for line in printed.splitlines() if line.strip().startswith("clip 1:"))
    assert clip_line.startswith(f"  clip 1: {info.duration_ms / 1000:.1f} s, h264, {info.fps:g} fps,"
                                f" {info.width}x{info.height}, {info.frames} frames,")
    assert clip_line.endswith(f"{api.url}/public/1.mp4?sig=x")
    assert f"poster: {api.url}/public/1.thumb.webp?sig=x" in printed
    written = tmp_path / "out" / f"{JOB_ID}-1.mp4"
    assert f"wrote {written}" in printed.replace("\n", "") and written.read_bytes() == clip


@pytest.mark.parametrize(("arguments", "message"), [
    (["--duration", "4"], "--duration ask(s) for a clip: add --video"),
    (["--video"], "--video needs --duration SECONDS"),
    (["--video", "--duration", "0"], "duration_s"),
    (["--video", "--duration", "4", "--input", "x.png", "--first-frame", f"{JOB_ID}:1"], "not both"),
    (["--video", "--duration", "4", "--input", "/no/such/still.png"], "No such file"),
])
def test_video_options_that_do_not_make_a_clip_are_refused_before_anything_is_sent(api, capsys, arguments, message):
    status = main(["jobs", "submit", "waves", *arguments])

    assert status == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert api.requests == []


def test_a_first_frame_that_is_not_job_and_number_is_a_usage_error(api, capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["jobs", "submit", "waves", "--video", "--duration", "4", "--first-frame", "last-one"])

    assert exit_status.value.code == 2 and "is not JOB:N" in capsys.readouterr().err
    assert api.requests == []
