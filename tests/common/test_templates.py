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
