"""A template's delivery options decide the bytes you download: a headshot comes as WebP, with
a watermark, and with a thumbnail stored beside it."""

import hashlib
import io

import httpx
from PIL import Image

from genline_client import Genline

with Genline() as client:
    # `profile: generic` because the built-in local providers paint no faces for the headshot
    # profile to find; with a real provider, leave it out.
    submitted = client.jobs.create("a studio headshot", template="headshot", profile="generic", tier="low-cost")
    job = client.jobs.wait(submitted)
    assert job.state == "succeeded", job.failure
    output = job.outputs[0]
    print(f"{output.media_type} {output.width}×{output.height}, {output.size_bytes} bytes,"
          f" watermarked: {output.watermarked}")
    assert output.media_type == "image/webp" and output.watermarked

    # The thumbnail has a signed, expiring link of its own.
    thumbnail = Image.open(io.BytesIO(httpx.get(output.thumbnail_url).raise_for_status().content))
    print(f"thumbnail: {thumbnail.format} {thumbnail.size[0]}×{thumbnail.size[1]}")
    assert max(thumbnail.size) <= 256

    # Downloads are checked against the sha256 of the delivered bytes.
    [path] = client.jobs.download(job, "headshots")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == output.sha256
    print("wrote", path)
