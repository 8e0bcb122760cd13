"""The template catalogue: stages as data, generate-only by default."""

import pytest
from pydantic import ValidationError

from services.common.templates import Catalogue, load_catalogue


def test_shipped_templates_declare_their_pipelines():
    catalogue = load_catalogue()
    assert [s.capability for s in catalogue.pipeline("studio-headshot")] == ["preprocess", "stylize", "upscale"]
    assert [s.capability for s in catalogue.pipeline("generic")] == ["generate"]
    assert [s.capability for s in catalogue.pipeline("no-such-template")] == ["generate"]
    assert catalogue.templates["product-cutout"].needs_input and not catalogue.templates["motion"].needs_input


@pytest.mark.parametrize("stages, problem", [
    ([{"capability": "upscale"}, {"capability": "generate"}], "generate can only be the first stage"),
    ([{"capability": "teleport"}], "capability"),
])
def test_a_pipeline_that_cannot_run_is_refused(stages, problem):
    with pytest.raises(ValidationError, match=problem):
        Catalogue.model_validate({"version": "1", "templates": {"t": {"stages": stages}}})


def test_video_templates_say_they_make_clips_and_where_their_first_frame_comes_from():
    catalogue = load_catalogue()
    text, image, motion = (catalogue.templates[name] for name in ("text-to-video", "image-to-video", "motion"))
    assert (text.video, image.video, motion.video, catalogue.templates["generic"].video) == (
        "required", "required", "optional", "never")
    assert [(s.capability, s.params) for s in text.pipeline] == [("generate", {"output": "video"})]
    assert not text.needs_input and image.needs_input and image.input is not None and image.input.checks
    assert (text.profile, image.profile) == ("video", "video")
    assert text.delivery.format == image.delivery.format == "mp4" and text.delivery.thumbnail.max_side == 256
    assert catalogue.video_templates() == ["motion", "text-to-video", "image-to-video"]


def test_a_template_cannot_half_ask_for_clips():
    with pytest.raises(ValidationError, match="video"):
        Catalogue.model_validate({"version": "1", "templates": {"t": {"video": "sometimes"}}})
