"""prompt_alignment with a tiny, randomly initialised CLIP built and saved by the test.

Nothing is downloaded: the tokenizer is made from a vocabulary and merges the test writes,
the model from a tiny CLIPConfig (conftest.clip_dir), both saved with save_pretrained and
loaded back through the scorer's own loader.
"""

import numpy as np
import pytest
import torch

from services.common.quality.profiles import load_profile
from services.scorer.dimensions import ClipModelError, Equipment, PromptAligner, QualityRules, Scorer, Scoring
from tests.scorer.conftest import CPU, png


@pytest.fixture(scope="module")
def clip_scorer(clip_dir):
    with Scorer(Equipment(device=CPU, clip_model_dir=str(clip_dir))) as scorer:
        yield scorer


@pytest.fixture(scope="module")
def images(photos) -> list[bytes]:
    return [png(photos["chelsea"]), png(photos["coffee"]), png(photos["chelsea"])]


def test_prompt_alignment_is_measured_with_a_model(clip_scorer, images):
    verdicts = clip_scorer.score(images, Scoring(profile=load_profile("generic"), prompt="a cat"))
    values = [v.dimensions["prompt_alignment"].value for v in verdicts]
    assert all(v.dimensions["prompt_alignment"].available for v in verdicts)
    assert all(-1.0 <= value <= 1.0 for value in values)
    assert values[0] == pytest.approx(values[2], abs=1e-6)
    assert values[0] != pytest.approx(values[1], abs=1e-6)
    for verdict in verdicts:
        result = verdict.dimensions["prompt_alignment"]
        assert result.passed == (result.value >= 0.2)
        assert verdict.passed == all(r.passed for r in verdict.dimensions.values())


def test_value_is_the_cosine_similarity_clip_itself_computes(clip_dir, photos):
    aligner = PromptAligner.load(clip_dir, CPU)
    pixels = torch.from_numpy(photos["coffee"]).permute(2, 0, 1)[None].float() / 255
    ours = float(aligner.embed_images(pixels) @ aligner.embed_text("a cat"))
    tokens = aligner.tokenizer(["a cat"], return_tensors="pt")
    with torch.inference_mode():
        output = aligner.model(**tokens, pixel_values=aligner.prepare(pixels))
        reference = float(output.logits_per_image[0, 0] / aligner.model.logit_scale.exp())
    assert ours == pytest.approx(reference, abs=1e-5)


def test_preparation_resizes_crops_and_normalises(clip_dir):
    aligner = PromptAligner.load(clip_dir, CPU)
    grey = torch.full((2, 3, 48, 80), 0.5)
    prepared = aligner.prepare(grey)
    assert prepared.shape == (2, 3, 32, 32)
    expected = (0.5 - aligner.mean) / aligner.std
    assert torch.allclose(prepared, expected.expand_as(prepared), atol=1e-4)


def test_without_a_prompt_it_is_unavailable_and_excused(clip_scorer, images):
    [verdict] = clip_scorer.score(images[:1], Scoring(profile=load_profile("generic")))
    result = verdict.dimensions["prompt_alignment"]
    assert not result.available and result.value is None and not result.passed
    assert "no prompt was given" in result.reason
    assert verdict.passed


def test_without_a_model_it_is_unavailable_and_excused(scorer, images):
    [verdict] = scorer.score(images[:1], Scoring(profile=load_profile("generic"), prompt="a cat"))
    result = verdict.dimensions["prompt_alignment"]
    assert not result.available and not result.passed
    assert "unavailable: no CLIP model is configured" in result.reason
    assert verdict.passed, "an optional dimension that cannot be computed must not fail the image"


def test_requiring_it_makes_a_scorer_without_model_incapable(scorer, clip_scorer, images):
    profile = load_profile("generic", QualityRules(require=["prompt_alignment"]))
    assert scorer.missing_capabilities(profile) == ["prompt_alignment"]
    assert clip_scorer.missing_capabilities(profile) == []
    assert scorer.missing_capabilities(load_profile("generic")) == []
    [verdict] = scorer.score(images[:1], Scoring(profile=profile, prompt="a cat"))
    assert verdict.failed == ("prompt_alignment",)


def test_missing_or_empty_model_directory_is_refused(tmp_path):
    with pytest.raises(ClipModelError, match="does not exist"):
        Scorer(Equipment(device=CPU, clip_model_dir=str(tmp_path / "absent")))
    with pytest.raises(ClipModelError, match="no CLIP model could be loaded"):
        Scorer(Equipment(device=CPU, clip_model_dir=str(tmp_path)))


def test_batches_of_mixed_sizes_align_like_single_images(clip_scorer, photos):
    small = png(np.ascontiguousarray(photos["chelsea"][:200, :300]))
    images = [png(photos["chelsea"]), small, png(photos["coffee"])]
    together = clip_scorer.score(images, Scoring(profile=load_profile("generic"), prompt="a cat"))
    for image, verdict in zip(images, together):
        [alone] = clip_scorer.score([image], Scoring(profile=load_profile("generic"), prompt="a cat"))
        assert verdict.dimensions["prompt_alignment"].value == pytest.approx(
            alone.dimensions["prompt_alignment"].value, abs=1e-6
        )
