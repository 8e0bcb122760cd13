"""Post-processing on the running services: a template's delivery (headshot: WebP, a
watermark, a thumbnail) decides the bytes a client downloads, and the job view and the
Python client show the format, size and the thumbnail's own link."""

import hashlib
import io

import httpx
from PIL import Image

from genline_client import Genline
from services.common.templates import load_catalogue
from tests.transactions import watch_idle_in_transaction


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_headshot_is_delivered_as_watermarked_webp_with_a_thumbnail_link(platform, tenant_factory, tmp_path):
    tenant = tenant_factory()
    delivery = load_catalogue().delivery("headshot")
    assert delivery.format == "webp" and delivery.watermark is not None  # what this test relies on
    # The local generator paints PNGs; generic scoring, as the generator draws no particular face.
    job_id = tenant.submit(template="headshot", profile="generic", images=1, candidates=2, seed=21)

    job = tenant.wait_settled([job_id])[job_id]

    assert job["state"] == "succeeded", job
    output = job["outputs"][0]
    assert output["media_type"] == "image/webp" and output["key"].endswith("/1.webp") and output["watermarked"]
    image = httpx.get(output["url"], timeout=10)
    assert image.status_code == 200 and hashlib.sha256(image.content).hexdigest() == output["sha256"]
    assert len(image.content) == output["size_bytes"]
    decoded = opened(image.content)
    assert decoded.format == "WEBP" and decoded.size == (output["width"], output["height"]) and output["frames"] == 1
    thumbnail = httpx.get(output["thumbnail_url"], timeout=10)
    assert thumbnail.status_code == 200 and output["thumbnail_media_type"] == "image/webp"
    small = opened(thumbnail.content)
    assert small.format == "WEBP" and max(small.size) <= delivery.thumbnail.max_side < max(decoded.size)

    with Genline(tenant.api_key, platform.ingest_url) as client:
        shown = client.jobs.get(job_id).outputs[0]
        assert (shown.media_type, shown.width, shown.height) == ("image/webp", *decoded.size)
        assert shown.thumbnail_url and httpx.get(shown.thumbnail_url, timeout=10).status_code == 200
        [path] = client.jobs.download(job_id, tmp_path)
    assert path.suffix == ".webp" and hashlib.sha256(path.read_bytes()).hexdigest() == output["sha256"]


def test_no_transaction_stays_open_while_large_images_are_post_processed_and_stored(tenant_factory, endpoints):
    """Two large headshots take delivery a while to turn into watermarked WebP and store;
    meanwhile none of its sessions may sit idle inside the transaction that claims the job's
    outcome (holding a pooled connection and the claim)."""
    tenant = tenant_factory()
    with watch_idle_in_transaction(endpoints.database_url, "query ILIKE %s", ["%job_outcomes%"]) as seen:
        job_id = tenant.submit(template="headshot", profile="generic", images=2, candidates=2, width=1536,
                               height=1536, seed=5)
        job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded" and len(job["outputs"]) == 2, job
    assert seen.polls > 0
    assert not seen.held, seen.held[0]
