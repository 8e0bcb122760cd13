"""The job view's cost per stage and the margin per template, from the router's calls."""

from services.common.contracts import ProviderCall
from services.ingest.admin.routes.operations import template_margins
from services.ingest.jobs.domain import JobView
from services.ingest.jobs.view import Billing, stage_costs


def call(stage: str, index: int, provider: str, cost: int, latency_ms: int) -> ProviderCall:
    return ProviderCall(provider=provider, outcome="ok", candidates=1, expected_cost_micro_usd=cost,
                        cost_micro_usd=cost, expected_latency_ms=latency_ms, latency_ms=latency_ms, stage=stage,
                        stage_index=index)


CALLS = [call("preprocess", 0, "local-crop", 300, 40), call("stylize", 1, "local-stylize", 2000, 90),
         call("stylize", 1, "local-stylize", 2000, 120), call("upscale", 2, "cheap", 0, 10),
         call("upscale", 2, "local-upscale", 1000, 30)]


def test_stages_group_calls_per_stage_and_provider_and_add_up():
    stages = stage_costs(2, CALLS)
    assert [(s.stage, s.provider, s.calls, s.cost_micro_usd, s.latency_ms) for s in stages] == [
        ("preprocess", "local-crop", 1, 300, 40), ("stylize", "local-stylize", 2, 4000, 120),
        ("upscale", "cheap", 1, 0, 10), ("upscale", "local-upscale", 1, 1000, 30)]
    assert all(s.attempt == 2 for s in stages)
    assert sum(s.cost_micro_usd for s in stages) == sum(c.cost_micro_usd for c in CALLS)


def test_margin_per_template_is_revenue_less_provider_cost():
    clip = {"n": 1, "key": "k", "url": "u", "expires_at": "2026-11-22T10:00:00Z", "sha256": "s", "size_bytes": 1,
            "media_type": "video/mp4", "frames": 96, "duration_ms": 4000, "fps": 24, "codec": "h264"}

    def view(template: str, charged: int, cost: int, clips: int = 0, seconds: int | None = None) -> JobView:
        return JobView.model_validate({
            "id": "9b3c1f3e-0d0a-4a57-8b1e-6a1f6a0b6d2e", "tenant_id": "t", "state": "succeeded", "template": template,
            "prompt": "p", "images": 1, "candidates": 1, "seed": 1, "created_at": "2026-11-22T10:00:00Z",
            "updated_at": "2026-11-22T10:00:00Z", "timestamps": {}, "provider_cost_micro_usd": cost,
            "billing": Billing(state="settled", charged=charged, revenue_micro_usd=charged * 10_000,
                               seconds_charged=seconds).model_dump(),
            "outputs": [clip | {"n": n} for n in range(1, clips + 1)],
            "stages": [s.model_dump() for s in stage_costs(1, CALLS)] if template == "studio-headshot" else []})

    rows = {r["template"]: r for r in template_margins([view("studio-headshot", 25, 7300), view("generic", 10, 8000),
                                                        view("generic", 0, 4000),
                                                        view("text-to-video", 70, 900_000, clips=2, seconds=7),
                                                        view("text-to-video", 0, 300_000)])}
    assert rows["generic"] == {"template": "generic", "jobs": 2, "delivered": 0, "seconds_charged": 0,
                               "charged_credits": 10, "revenue_micro_usd": 100_000,
                               "provider_cost_micro_usd": 12_000, "stage_cost_micro_usd": {},
                               "margin_micro_usd": 88_000, "provider_cost_per_delivered_micro_usd": None}
    # Clips that failed, and jobs that delivered none, are paid to providers too: per delivered clip.
    videos = rows["text-to-video"]
    assert (videos["delivered"], videos["seconds_charged"], videos["provider_cost_per_delivered_micro_usd"]) == (
        2, 7, 600_000)
    assert rows["studio-headshot"]["margin_micro_usd"] == 250_000 - 7300
    assert rows["studio-headshot"]["stage_cost_micro_usd"] == {"preprocess": 300, "stylize": 4000, "upscale": 1000}
