"""Provenance on the running services: a delivered image carries Content Credentials that the
C2PA SDK's Reader finds Trusted against the anchor the deployment publishes, its receipt
records the file's hash and the manifest's label, and `POST /v1/verify` and `genline verify`
say what a file proves: the delivered file intact, the same file with one pixel changed
altered, a re-encoded copy still attributed by its watermark, and the job shown only to the
tenant that owns it; a thumbnail, an image through a social network's pipeline and a clip a
video platform re-encoded at half its bitrate and 480 lines are each attributed to their job,
the credentials their manifest carried recovered from the deployment's records."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import c2pa
import httpx
import numpy as np
from PIL import Image

from services.common import watermark
from services.common.provenance import ANCHORS_PATH, JOB_ASSERTION, TRAINED_ALGORITHMIC_MEDIA
from tests.delivery.test_clips import platform_copy

GENLINE = [sys.executable, "-m", "genline_cli"]
ROOT = Path(__file__).resolve().parents[2]


def delivered_png(tenant) -> tuple[str, dict, bytes]:
    job_id = tenant.submit(images=1, candidates=2, seed=53)  # the generic template: PNG as generated
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded", job
    output = job["outputs"][0]
    return job_id, output, httpx.get(output["url"], timeout=10).content


def png_chunks(data: bytes) -> list[bytes]:
    """The PNG's chunks, each whole (length, type, data, CRC)."""
    chunks, at = [], 8
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at:at + 12 + length])
        at += 12 + length
    return chunks


def with_one_pixel_changed(data: bytes) -> bytes:
    """The same PNG, every chunk kept (its Content Credentials too), but its pixels, one of
    them brighter: as an editor that keeps metadata would save it."""
    with Image.open(io.BytesIO(data)) as opened:
        pixels = np.array(opened)
    pixels[10, 10, :3] = (pixels[10, 10, :3].astype(int) + 40).clip(0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    new_pixels = [c for c in png_chunks(buffer.getvalue()) if c[4:8] == b"IDAT"]
    kept = png_chunks(data)
    first_idat = next(i for i, c in enumerate(kept) if c[4:8] == b"IDAT")
    others = [c for c in kept if c[4:8] != b"IDAT"]
    spliced = others[:first_idat] + new_pixels + others[first_idat:]
    return data[:8] + b"".join(spliced)


def stripped_with_one_pixel_changed(data: bytes) -> bytes:
    """One pixel brighter, saved again without the metadata (most editors and sites)."""
    with Image.open(io.BytesIO(data)) as opened:
        pixels = np.array(opened.convert("RGB"))
    pixels[10, 10] = (pixels[10, 10].astype(int) + 40).clip(0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def verify(platform, data: bytes, api_key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.post(f"{platform.ingest_url}/v1/verify", content=data, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_delivered_image_is_signed_bound_to_its_receipt_and_verified(platform, tenant_factory, tmp_path):
    tenant = tenant_factory()
    job_id, output, data = delivered_png(tenant)
    anchor = httpx.get(f"{platform.ingest_url}{ANCHORS_PATH}", timeout=10)
    assert anchor.status_code == 200 and anchor.text.startswith("-----BEGIN CERTIFICATE-----")

    # The SDK's own Reader, with only the published anchor.
    context = c2pa.Context.from_dict({"trust": {"user_anchors": anchor.text}, "verify": {"verify_trust": True}})
    with c2pa.Reader(output["media_type"], io.BytesIO(data), context=context) as reader:
        assert str(reader.get_validation_state()) == "Trusted"
        store = json.loads(reader.json())
    manifest = store["manifests"][store["active_manifest"]]
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    created = assertions["c2pa.actions.v2"]["actions"][0]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    # The provider, and the model with its pinned version, as the router generated with them.
    [generated] = [s for s in tenant.job(job_id)["scores"] if s["index"] in tenant.job(job_id)["selected"]]
    assert created["parameters"]["provider"] == generated["provider"]
    assert created["parameters"]["model"] and created["parameters"]["model_version"]
    assert assertions[JOB_ASSERTION]["job_id"] == job_id

    # The receipt records the file's hash and the manifest's label: either leads to the other.
    receipt = tenant.http.get(f"/v1/jobs/{job_id}/receipt").json()["receipt"]
    [recorded] = receipt["outputs"]
    assert recorded["manifest_label"] == store["active_manifest"] == output["manifest_label"]
    assert recorded["sha256"] == output["sha256"] and recorded["watermark_id"] == output["watermark_id"]

    anonymous = verify(platform, data)
    assert anonymous["generated_here"] and anonymous["intact"] and anonymous["ai_generated"]
    assert anonymous["content_credentials"]["state"] == "Trusted" and anonymous["job"] is None
    owner = verify(platform, data, tenant.api_key)
    assert owner["job"]["id"] == job_id and owner["job"]["receipt"] == f"/v1/jobs/{job_id}/receipt"
    assert verify(platform, data, tenant_factory().api_key)["job"] is None  # another tenant sees no job

    altered = verify(platform, with_one_pixel_changed(data))
    assert altered["content_credentials"]["state"] == "Invalid"
    assert altered["generated_here"] and altered["intact"] is False and "altered" in altered["summary"]
    edited = verify(platform, stripped_with_one_pixel_changed(data))
    assert not edited["content_credentials"]["present"] and edited["attributed_by"] == "watermark"
    assert edited["generated_here"] and edited["intact"] is False

    with Image.open(io.BytesIO(data)) as opened:
        copy = io.BytesIO()
        opened.convert("RGB").save(copy, format="JPEG", quality=75)  # metadata gone, as on a social network
    stripped = verify(platform, copy.getvalue())
    assert not stripped["content_credentials"]["present"]
    assert stripped["attributed_by"] == "watermark" and stripped["watermark"]["delivery_id"] == output["watermark_id"]
    assert stripped["generated_here"] and stripped["intact"] is False

    # `genline verify` as a user runs it, without an account: exit 0 intact, 4 altered.
    path = tmp_path / "delivered.png"
    path.write_bytes(data)
    (tmp_path / "altered.png").write_bytes(with_one_pixel_changed(data))
    env = {k: v for k, v in os.environ.items() if k != "GENLINE_API_KEY"} | {"GENLINE_API_URL": platform.ingest_url}
    intact = subprocess.run([*GENLINE, "verify", str(path)], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert intact.returncode == 0, intact.stderr
    said = " ".join(intact.stdout.split())  # as printed, wrapped to the terminal's width
    assert "AI-generated by this deployment" in said and "intact: byte for byte as delivered" in said
    changed = subprocess.run([*GENLINE, "verify", "--json", str(tmp_path / "altered.png")], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert changed.returncode == 4 and json.loads(changed.stdout)["intact"] is False


def test_a_file_of_no_delivery_proves_nothing_and_other_bytes_are_refused(platform):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(buffer, "PNG")
    answer = verify(platform, buffer.getvalue())
    assert not answer["generated_here"] and answer["intact"] is None and not answer["content_credentials"]["present"]
    refused = httpx.post(f"{platform.ingest_url}/v1/verify", content=b"%PDF-1.7 not an image", timeout=10)
    assert refused.status_code == 415 and refused.headers["content-type"] == "application/problem+json"


def genline_verify(platform, path: Path, api_key: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "GENLINE_API_KEY"} | {"GENLINE_API_URL": platform.ingest_url}
    said = subprocess.run([*GENLINE, "verify", "--json", "--api-key", api_key, str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert said.returncode == 4, said.stdout + said.stderr  # attributed, but not the file as delivered
    return json.loads(said.stdout)


def social(data: bytes) -> bytes:
    """A social network's pipeline: 1080 pixels wide, JPEG 80, the metadata gone."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    image = image.resize((1080, round(image.height * 1080 / image.width)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def test_copies_in_the_wild_are_attributed_to_their_job_with_the_stripped_credentials_recovered(
        platform, tenant_factory, tmp_path):
    tenant = tenant_factory()
    still = tenant.submit(images=1, candidates=1, seed=64, width=1024, height=768)
    moving = tenant.submit(template="text-to-video", images=1, candidates=1, seed=65,
                           video={"duration_s": 2, "aspect_ratio": "16:9", "resolution": "720p", "fps": 12})
    jobs = tenant.wait_settled([still, moving], timeout_s=600)
    assert {job["state"] for job in jobs.values()} == {"succeeded"}, jobs
    image, clip = jobs[still]["outputs"][0], jobs[moving]["outputs"][0]
    copies = {  # what people share: a gallery's thumbnail, a social network's copy, a video platform's copy
        still: [("thumbnail.webp", httpx.get(image["thumbnail_url"], timeout=30).content),
                ("social.jpg", social(httpx.get(image["url"], timeout=30).content))],
        moving: [("platform.mp4", platform_copy(httpx.get(clip["url"], timeout=60).content))],
    }
    for job_id, files in copies.items():
        job = jobs[job_id]
        [made] = [s for s in job["scores"] if s["index"] in job["selected"]]
        for name, data in files:
            (tmp_path / name).write_bytes(data)
            answer = genline_verify(platform, tmp_path / name, tenant.api_key)
            assert not answer["content_credentials"]["present"] and answer["attributed_by"] == "watermark", name
            assert answer["job"]["id"] == job_id and answer["generated_here"] and answer["intact"] is False
            recovered = answer["recovered"]
            assert recovered["manifest_label"] == job["outputs"][0]["manifest_label"], name
            assert (recovered["provider"], recovered["model"]) == (made["provider"], made["model"]), name
            assert recovered["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA
            assert recovered["soft_binding"] == watermark.ALGORITHM
            assert "recovered from this deployment's records" in answer["summary"]
    # Anyone may verify: the claims the file once carried come back, the job only to its owner.
    anonymous = verify(platform, (tmp_path / "social.jpg").read_bytes())
    assert anonymous["recovered"]["provider"] and anonymous["job"] is None
