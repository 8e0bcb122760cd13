"""Examples of the jobs API's bodies, as the OpenAPI document shows them; other routes' examples
name the same job (`JOB_ID`)."""

from pydantic.config import JsonDict

JOB_ID = "0f6c2d4e-9b1a-4c3e-8f7d-2a5b6c7d8e9f"
JOB_REQUEST_EXAMPLE: JsonDict = {"prompt": "a red bicycle against a brick wall", "template": "generic", "images": 2,
                       "candidates": 4, "seed": 7, "quality": {"thresholds": {"sharpness": {"min": 80}}}}
# A video job: one clip delivered out of three made, 4 s each, charged by the delivered second.
VIDEO_JOB_REQUEST_EXAMPLE: JsonDict = {"prompt": "waves rolling onto a beach at dusk", "template": "text-to-video", "images": 1,
                             "candidates": 3, "video": {"duration_s": 4, "aspect_ratio": "16:9", "resolution": "480p",
                                                        "fps": 24}}
# A clip that starts from an image a job of yours delivered (its `n` in that job's outputs).
CLIP_FROM_IMAGE_EXAMPLE: JsonDict = {"prompt": "the bicycle rolls slowly out of the frame", "template": "image-to-video",
                                     "images": 1, "candidates": 2,
                                     "video": {"duration_s": 4, "resolution": "480p", "first_frame": {"job_id": JOB_ID, "n": 1}}}
JOB_EXAMPLE = {
    "id": JOB_ID, "tenant_id": "acme", "state": "succeeded", "template": "generic",
    "prompt": "a red bicycle against a brick wall", "images": 1, "candidates": 2, "seed": 7,
    "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:09Z",
    "timestamps": {"submitted": "2026-11-02T10:00:00Z", "succeeded": "2026-11-02T10:00:09Z"},
    "attempts": 1, "selected": [0],
    "scores": [{"index": 0, "attempt": 1, "provider": "local-fast", "key": f"candidates/acme/{JOB_ID}/1.candidates",
                "offset": 0, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size_bytes": 48213,
                "media_type": "image/png", "passed": True, "score": 0.91, "failed": [],
                "dimensions": {"sharpness": {"value": 212.4, "threshold": 80, "passed": True, "reason": "sharp enough"}}}],
    "outputs": [{"n": 0, "key": f"acme/2026/11/{JOB_ID}/0.png", "url": "https://…/0.png?X-Amz-Signature=…",
                 "expires_at": "2026-11-02T11:00:09Z", "size_bytes": 48213, "media_type": "image/png",
                 "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}],
    "billing": {"state": "settled", "reserved": 10, "charged": 10, "released": 0, "price_book_version": "2026-11-01"},
    "provider_cost_micro_usd": 4000,
}
JOB_PAGE_EXAMPLE = {
    "data": [{"id": JOB_ID, "state": "succeeded", "template": "generic", "images": 1, "delivered": 1,
              "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-02T10:00:09Z", "failure": None,
              "billing": JOB_EXAMPLE["billing"], "url": f"/v1/jobs/{JOB_ID}"}],
    "next": "eyJ0IjoiMjAyNi0xMS0wMlQxMDowMDowMFoiLCJpZCI6IjBmNmMifQ",
}
CANCELED_EXAMPLE = JOB_EXAMPLE | {
    "state": "canceled", "outputs": [], "selected": [],
    "timestamps": {"submitted": "2026-11-02T10:00:00Z", "canceled": "2026-11-02T10:00:04Z"},
    "failure": {"code": "canceled", "stage": "generating", "reason": "canceled by the client"},
    "billing": {"state": "settled", "reserved": 10, "charged": 0, "released": 10, "price_book_version": "2026-11-01"},
}
ERASURE_EXAMPLE: JsonDict = {"id": JOB_ID, "state": "erasing"}
REPORT_EXAMPLE: JsonDict = {"reason": "the bicycle has three wheels"}
