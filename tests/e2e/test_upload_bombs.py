"""Ingest stays up under a burst of image bombs: 20 uploads at once of small files that
declare huge canvases (PNG, JPEG, WebP, an animation of large frames), beside large real
photographs that screening must decode. Every bomb is refused (4xx), each photograph is
either kept or asked to come back (503, Retry-After), ingest's memory grows by no more than
its screening budget, and a job submitted meanwhile succeeds."""

import io
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
from PIL import Image

BUDGET = 160 * 1024 * 1024
# What else the process holds while it serves the burst: two dozen request bodies and their
# multipart copies, threads' stacks, the allocator's slack (measured: growth of 111-113 MiB
# in all, budget included, since decodes run on the gate's own threads; 201-297 MiB before).
MARGIN = 112 * 1024 * 1024


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG of a few kilobytes whose IDAT inflates to every row of a width×height canvas."""
    row = b"\x00" + b"\x00" * width * (3 if colour_type == 2 else 1)
    pixels = zlib.compressobj(9)
    data = b"".join(pixels.compress(row) for _ in range(height)) + pixels.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def photograph(width: int, height: int, seed: int) -> bytes:
    blocks = np.random.default_rng(seed).integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    return encoded(Image.fromarray(blocks.repeat(8, 0).repeat(8, 1)), "PNG", compress_level=1)


def bombs() -> list[tuple[str, bytes]]:
    flat_jpeg = encoded(Image.new("RGB", (8000, 5000)), "JPEG", quality=10)  # 40 MP in ~100 KB
    flat_webp = encoded(Image.new("RGB", (7000, 5000)), "WEBP", quality=1)
    frames = [Image.new("RGB", (6000, 4000), (i, i, i)) for i in range(3)]
    animation = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=1)
    made = [("40 MP PNG", png_bomb(8000, 5000)), ("40 MP grey PNG", png_bomb(8000, 5000, colour_type=0)),
            ("40 MP JPEG", flat_jpeg), ("35 MP WebP", flat_webp), ("24 MP animated WebP", animation),
            ("a canvas of 60,000 × 1,000", png_bomb(60_000, 1_000))]
    return [made[i % len(made)] for i in range(20)]


class PeakRss:
    """The largest resident set of a process while the block runs, sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.process, self.peak, self._done = psutil.Process(pid), 0, threading.Event()

    def __enter__(self) -> "PeakRss":
        self.before = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *_) -> None:
        self._done.set()
        self._thread.join()


def test_a_burst_of_bombs_is_refused_within_the_screening_budget_and_a_job_goes_through(platform, tenant_factory):
    replica = platform.start_replica("ingest", env={"GENLINE_SCREENING_MEMORY_BYTES": str(BUDGET),
                                                    "GENLINE_MAX_UPLOAD_BYTES": str(40 * 1024 * 1024)})
    try:
        tenant = tenant_factory()
        tenant.http.base_url = platform.url(replica)
        bursts = bombs() + [(f"12 MP photograph {i}", photograph(4000, 3000, i)) for i in range(4)]
        with PeakRss(platform.processes[replica].pid) as rss, ThreadPoolExecutor(len(bursts) + 1) as pool:
            job = pool.submit(tenant.submit, images=1, candidates=2)
            answers = list(pool.map(lambda item: tenant.http.post(
                "/v1/uploads", files={"file": ("photo", item[1], "application/octet-stream")}, timeout=120), bursts))
            job_id = job.result()

        for (what, _), answer in zip(bursts, answers):
            if what.startswith("12 MP photograph"):
                assert answer.status_code in (201, 503), (what, answer.text)
                if answer.status_code == 503:
                    assert answer.headers["Retry-After"] and answer.json()["type"] == "/problems/screening-busy"
            else:
                assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text)
                assert answer.json()["type"] in ("/problems/too-many-pixels", "/problems/decompression-bomb")
        assert any(answer.status_code == 201 for answer in answers[-4:]), "no photograph was screened at all"
        grown = rss.peak - rss.before
        assert grown < BUDGET + MARGIN, f"ingest grew by {grown / 2**20:.0f} MiB under a {BUDGET / 2**20:.0f} MiB budget"
        assert tenant.wait_settled([job_id])[job_id]["state"] == "succeeded"
    finally:
        platform.stop(replica)
