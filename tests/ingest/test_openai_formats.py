"""OpenAI's `output_format` as the job it asks for, without I/O: the format goes with the job
(delivery encodes the images so, whatever the template delivers by itself), a JPEG cannot be
transparent, and a clip has no image format."""

import pytest
from pydantic import ValidationError

from services.common.contracts import CandidatesScored
from services.common.problems import Problem
from services.common.templates import load_catalogue
from services.delivery.domain import as_asked
from services.ingest.compat.images import ImageGenerationRequest, job_request
from services.ingest.compat.models import Alias
from services.ingest.jobs.submission import JobRequest

GPT_IMAGE = Alias(template="generic", response_format="b64_json")


@pytest.mark.parametrize("asked", ["png", "jpeg", "webp"])
def test_the_format_asked_goes_with_the_job_and_delivery_encodes_so(asked):
    body = job_request(ImageGenerationRequest(prompt="a mug", output_format=asked), GPT_IMAGE, template="generic")
    assert JobRequest.model_validate(body).output_format == asked
    scored = CandidatesScored(job_id="9b3c1f3e-0d0a-4a57-8b1e-6a1f6a0b6d2e", tenant_id="t", attempt=1, images=1,
                              scores=[], selected=[], template="generic", output_format=asked)
    template = load_catalogue().delivery("generic")
    assert template.format == "original" and as_asked(template, scored).format == asked


def test_a_transparent_jpeg_is_refused_and_a_clip_takes_no_image_format():
    with pytest.raises(Problem) as refused:
        job_request(ImageGenerationRequest(prompt="a mug", output_format="jpeg", background="transparent"), GPT_IMAGE,
                    template="product-cutout")
    assert refused.value.extra["param"] == "output_format"
    with pytest.raises(ValidationError, match="output_format is for images"):
        JobRequest.model_validate({"prompt": "a wave", "template": "text-to-video", "output_format": "png",
                                   "video": {"duration_s": 2}})
