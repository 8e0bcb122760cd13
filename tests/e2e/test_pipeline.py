"""Templates as pipelines of stages, on the five services as processes with the local
providers: a headshot from an uploaded portrait (crop → stylise → upscale), a product
cut out of its background, a clip from a still, and a stage's provider swapped in YAML."""

import io
from pathlib import Path

import httpx
import numpy as np
import yaml
from PIL import Image
from skimage import data

from services.router.providers.registry import DEFAULT_PATH
from tests.e2e.conftest import LEDGER_ADMIN_TOKEN

CHEAPER_UPSCALER = {
    "adapter": "local", "models": [{"name": "opencv-nearest", "version": "4"}],
    "capabilities": {"stages": ["upscale"], "max_images_per_request": 1},
    "price": {"per_image_micro_usd": 300}, "concurrency": 4, "latency": {"base_s": 0.01, "per_image_s": 0.02},
    "pass_rate_prior": {"mean": 0.9, "strength": 4},
    "local": {"defect_rate": 0.0, "operation": "upscale", "options": {"method": "nearest"}},
}


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(tenant, pixels: np.ndarray) -> str:
    response = tenant.http.post("/v1/uploads", files={"file": ("photo.png", png_of(pixels), "image/png")}, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run(tenant, **body) -> dict:
    # The scorer checks the input photo at submission: its first face detection may take a while.
    response = tenant.http.post("/v1/jobs", json={"images": 1, "candidates": 1, "seed": 7} | body, timeout=120)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    job = tenant.wait_settled([job_id], timeout_s=300)[job_id]
    assert job["state"] == "succeeded", job
    return job


def downloaded(job: dict) -> Image.Image:
    response = httpx.get(job["outputs"][0]["url"], timeout=30)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def stages_of(job: dict) -> list[tuple[str, str]]:
    return [(s["stage"], s["provider"]) for s in sorted(job["stages"], key=lambda s: (s["attempt"], s["stage_index"]))]


def assert_stage_costs_add_up(job: dict) -> None:
    assert all(s["cost_micro_usd"] > 0 and s["latency_ms"] >= 0 and s["expected_cost_micro_usd"] > 0
               for s in job["stages"])
    assert sum(s["cost_micro_usd"] for s in job["stages"]) == job["provider_cost_micro_usd"] > 0


def test_templates_are_listed_with_stages_inputs_and_prices(tenant_factory):
    tenant = tenant_factory(credits=0)
    listed = {t["name"]: t for t in tenant.http.get("/v1/templates").json()["templates"]}
    headshot = listed["studio-headshot"]
    assert [s["capability"] for s in headshot["stages"]] == ["preprocess", "stylize", "upscale"]
    assert headshot["input"]["required"] and "faces" in headshot["input"]["checks"]
    assert headshot["profile"] == "headshot" and headshot["prices"] == {"stable": 25, "fast": 20, "low-cost": 12}
    assert [s["capability"] for s in listed["generic"]["stages"]] == ["generate"]
    assert not listed["generic"]["input"]["required"]


def test_headshot_from_an_uploaded_portrait_lists_each_stage_and_its_cost(tenant_factory):
    tenant = tenant_factory()
    refused = tenant.http.post("/v1/jobs", json={"prompt": "me", "template": "studio-headshot"})
    assert refused.status_code == 422 and refused.json()["type"] == "/problems/input-required"

    job = run(tenant, prompt="a studio headshot", template="studio-headshot", input_upload=upload(tenant, data.astronaut()))
    assert stages_of(job) == [("preprocess", "local-crop"), ("stylize", "local-stylize"), ("upscale", "local-upscale")]
    assert_stage_costs_add_up(job)
    image = downloaded(job)
    assert image.size == (640, 640)  # the 320-pixel face crop, upscaled twice
    output = job["outputs"][0]
    assert image.format == "WEBP" and output["watermarked"] and output["thumbnail_url"]
    # Identity is scored against the uploaded portrait, not waived for want of a reference.
    assert job["scores"][0]["dimensions"]["identity"]["value"] is not None


def test_product_cutout_is_delivered_with_a_transparent_background(platform, tenant_factory):
    tenant = tenant_factory()
    job = run(tenant, prompt="a cup of coffee", template="product-cutout", input_upload=upload(tenant, data.coffee()))
    assert stages_of(job) == [("remove_background", "local-cutout")]
    assert_stage_costs_add_up(job)
    cut = np.asarray(downloaded(job).convert("RGBA"))
    height, width = cut.shape[:2]
    assert cut[2, 2, 3] == 0 and cut[-3, -3, 3] == 0  # the background is transparent
    assert cut[height // 2, width // 2, 3] == 255  # the cup is not

    margins = httpx.get(f"{platform.ingest_url}/admin/v1/margins", timeout=30,
                        headers={"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"})
    assert margins.status_code == 200, margins.text
    [row] = [r for r in margins.json()["templates"] if r["template"] == "product-cutout"]
    assert row["margin_micro_usd"] == row["revenue_micro_usd"] - row["provider_cost_micro_usd"]
    assert row["stage_cost_micro_usd"]["remove_background"] >= job["provider_cost_micro_usd"] > 0


def test_motion_delivers_a_clip_of_the_declared_frames_and_size(tenant_factory):
    tenant = tenant_factory()
    job = run(tenant, prompt="a harbour at dawn", template="motion")
    assert [stage for stage, _ in stages_of(job)] == ["generate", "animate"]
    assert_stage_costs_add_up(job)
    clip = downloaded(job)
    assert (clip.format, getattr(clip, "n_frames", 1), clip.size) == ("WEBP", 8, (320, 320))
    assert job["outputs"][0]["media_type"] == "image/webp" and job["outputs"][0]["frames"] == 8
    scored = job["scores"][0]["dimensions"]  # the motion profile: measured on the frames
    assert scored["frames"]["value"] == 8 and scored["flicker"]["passed"] and scored["frame_sharpness"]["passed"]


def test_a_cheaper_upscaler_declared_in_yaml_takes_the_next_job(platform, tenant_factory, tmp_path: Path):
    registry = yaml.safe_load(DEFAULT_PATH.read_text())
    registry["providers"]["local-upscale-nearest"] = CHEAPER_UPSCALER
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump(registry))
    tenant = tenant_factory()
    platform.stop("router")
    platform.service_env["router"] = {"GENLINE_PROVIDERS_PATH": str(tmp_path / "providers.yaml")}
    try:
        platform.restart("router")
        job = run(tenant, prompt="a studio headshot", template="studio-headshot",
                  input_upload=upload(tenant, data.astronaut()))
    finally:
        platform.stop("router")
        platform.service_env.pop("router")
        platform.restart("router")
    assert ("upscale", "local-upscale-nearest") in stages_of(job)
    assert_stage_costs_add_up(job)
