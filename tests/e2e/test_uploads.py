"""Uploads and input guidance on the five services as processes: what is refused is refused
with its reason and leaves nothing in the internal bucket; what is kept is upright and
without metadata; a headshot's input photo is measured by the scorer before the job is
accepted, and a photo that passes is usable by a job that succeeds."""

import io
import struct
import zipfile
import zlib

import boto3
import pytest
from PIL import Image
from skimage import data as skimage_data

from services.ingest.settings import IngestSettings


@pytest.fixture(scope="module")
def bucket(endpoints):
    """The internal bucket, listed as S3 lists it."""
    s3 = boto3.client("s3", endpoint_url=endpoints.s3_endpoint_url, aws_access_key_id=endpoints.s3_access_key_id,
                      aws_secret_access_key=endpoints.s3_secret_access_key, region_name="us-east-1")
    name = endpoints.settings(IngestSettings).internal_bucket

    class Bucket:
        def keys(self, prefix: str) -> list[str]:
            listed = s3.list_objects_v2(Bucket=name, Prefix=prefix)
            return [item["Key"] for item in listed.get("Contents", [])]

        def get(self, key: str) -> bytes:
            return s3.get_object(Bucket=name, Key=key)["Body"].read()

    return Bucket()


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb() -> bytes:
    """A few kilobytes that declare 50,000 × 50,000 grey pixels."""
    header = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 50_001 * 64, 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def with_zip(image: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "not an image")
    return image + out.getvalue()


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)())


def upload(tenant, data: bytes, filename: str = "photo.png", content_type: str = "image/png"):
    return tenant.http.post("/v1/uploads", files={"file": (filename, data, content_type)}, timeout=60)


REFUSED = {
    "a 100-megapixel PNG": (lambda: encoded(Image.new("L", (10_000, 10_000)), "PNG", compress_level=1),
                            413, "too-many-pixels"),
    "a decompression bomb": (bomb, 413, "too-many-pixels"),
    "a truncated JPEG": (lambda: encoded(photo("astronaut"), "JPEG")[:20_000], 422, "truncated-image"),
    "an HTML file named .png": (lambda: b"<!doctype html><html><body><script>alert(1)</script></body></html>",
                                415, "unsupported-image-type"),
    "a PNG with a ZIP appended": (lambda: with_zip(encoded(photo("astronaut"), "PNG")), 422, "polyglot-image"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_upload_names_its_reason_and_stores_nothing(tenant_factory, bucket, case):
    make, status, slug = REFUSED[case]
    tenant = tenant_factory(credits=0)
    response = upload(tenant, make())
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"/problems/{slug}" and response.json()["reason"]
    assert bucket.keys(f"{tenant.id}/") == []


def test_an_upload_larger_than_the_cap_is_refused_from_its_length(tenant_factory, bucket):
    tenant = tenant_factory(credits=0)
    response = tenant.http.post("/v1/uploads", content=b"\x89PNG" + bytes(8 * 1024 * 1024),
                                headers={"content-type": "image/png"}, timeout=60)
    assert response.status_code == 413 and response.json()["type"] == "/problems/image-too-large"
    assert bucket.keys(f"{tenant.id}/") == []


def test_an_exif_rotated_photo_is_stored_upright_and_without_metadata(tenant_factory, bucket):
    tenant = tenant_factory(credits=0)
    image = Image.new("RGB", (120, 60), (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, 60, 60))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 5.0)}  # GPS
    response = tenant.http.post("/v1/uploads", content=encoded(image, "JPEG", exif=exif, quality=95),
                                headers={"content-type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["media_type"], body["width"], body["height"]) == ("image/jpeg", 60, 120)
    assert response.headers["location"] == f"/v1/uploads/{body['id']}"
    [key] = bucket.keys(f"{tenant.id}/uploads/")
    stored = Image.open(io.BytesIO(bucket.get(key)))
    assert stored.size == (60, 120) and not stored.getexif() and "exif" not in stored.info
    assert max(stored.getpixel((30, 20))[2], 0) > 150  # the blue half is on top, as it was shown
    assert tenant.http.get(f"/v1/uploads/{body['id']}").json() == body


def test_another_tenants_upload_is_not_found(tenant_factory):
    owner, other = tenant_factory(credits=0), tenant_factory(credits=0)
    upload_id = upload(owner, encoded(photo("astronaut"), "PNG")).json()["id"]
    assert owner.http.get(f"/v1/uploads/{upload_id}").status_code == 200
    response = other.http.get(f"/v1/uploads/{upload_id}")
    assert response.status_code == 404 and response.json()["type"] == "/problems/upload-not-found"
    refused = other.http.post("/v1/jobs", json={"prompt": "p", "input_upload": upload_id})
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/unknown-upload"


def test_a_portrait_without_a_face_is_refused_for_a_headshot_with_guidance(tenant_factory):
    tenant = tenant_factory()
    upload_id = upload(tenant, encoded(photo("chelsea"), "JPEG")).json()["id"]  # a cat
    response = tenant.http.post("/v1/jobs", json={"prompt": "a studio headshot", "template": "headshot",
                                                  "input_upload": upload_id}, timeout=120)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"] == "/problems/input-guidance" and "no face was found" in problem["detail"]
    assert problem["checks"][0] | {"message": ""} == {"dimension": "faces", "value": 0.0, "min": 1, "max": 1,
                                                       "message": ""}
    assert tenant.http.get("/v1/jobs").json()["data"] == []
    assert tenant.balance()["pending"] == 0


def test_a_phones_photo_is_checked_at_the_size_it_is_used_at_not_refused_as_blurred(tenant_factory):
    """A 9-megapixel photo with the detail of a 1,024-pixel one, as a phone's lens and noise
    reduction give: the variance of its Laplacian, per pixel, read as blurred at its own size
    (21 where a headshot's reference needs 40), with the advice to upload the original."""
    tenant = tenant_factory()
    sharp_at_1024 = photo("astronaut").resize((1024, 1024), Image.Resampling.LANCZOS)
    phone = encoded(sharp_at_1024.resize((3024, 3024), Image.Resampling.BICUBIC), "JPEG", quality=90)
    uploaded = upload(tenant, phone, "phone.jpg", "image/jpeg")
    assert uploaded.status_code == 201, uploaded.text
    response = tenant.http.post("/v1/jobs", json={"prompt": "a studio headshot", "template": "headshot",
                                                  "profile": "generic", "input_upload": uploaded.json()["id"],
                                                  "images": 1, "candidates": 1}, timeout=120)
    assert response.status_code == 202, response.text
    tenant.http.post(f"/v1/jobs/{response.json()['id']}/cancel")


def test_the_astronaut_passes_the_headshot_checks_and_its_job_succeeds(tenant_factory):
    tenant = tenant_factory()
    uploaded = upload(tenant, encoded(photo("astronaut"), "PNG"), "astronaut.png")
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["width"], uploaded.json()["height"]) == (512, 512)
    # Scored on the generic profile: the local generator takes no input image yet, so its
    # candidates could not show the astronaut (headshot's identity check).
    response = tenant.http.post("/v1/jobs", json={"prompt": "a studio headshot", "template": "headshot",
                                                  "profile": "generic", "input_upload": uploaded.json()["id"],
                                                  "images": 1, "candidates": 2}, timeout=120)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded" and len(job["outputs"]) == 1
