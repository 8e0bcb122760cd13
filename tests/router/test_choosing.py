"""An order's way of carrying its subject, by expected cost per passing image: a training is
spread over the order's candidates (it pays for itself on a large order, not on a small one),
an identity already trained or training costs nothing more, and a job that names its way gets
that way or none."""

import uuid

from services.router.planning import PassRateEstimator, identity_key
from services.router.providers.entry_parts import PassRatePrior
from services.router.subjects.choosing import Priced, Way, cheapest_way, per_passing_image, why_no_way

LORA_MODEL = Priced(price_micro_usd=4000, pass_rate=0.85)
REFERENCE_MODEL = Priced(price_micro_usd=4000, pass_rate=0.55)
TRAINING = 450_000


def ways(candidates: int, trained: uuid.UUID | None = None) -> list[Way]:
    lora = Way(mode="lora", cost_per_passing_image=per_passing_image(LORA_MODEL, 0 if trained else TRAINING, candidates=candidates),
               provider="trainer", identity_id=trained, trains=trained is None,
               training_micro_usd=0 if trained else TRAINING)
    reference = Way(mode="reference", provider="portraits",
                    cost_per_passing_image=per_passing_image(REFERENCE_MODEL, 0, candidates=candidates))
    return [reference, lora]


def test_a_training_pays_for_itself_on_a_large_order_and_not_on_a_small_one():
    large, small = cheapest_way(ways(240)), cheapest_way(ways(8))
    assert large is not None and large.mode == "lora" and large.trains
    assert small is not None and small.mode == "reference"
    assert per_passing_image(LORA_MODEL, TRAINING, candidates=240) == (4000 + TRAINING / 240) / 0.85


def test_a_trained_identity_costs_nothing_more_even_on_a_small_order():
    trained = uuid.uuid4()
    way = cheapest_way(ways(2, trained))
    assert way is not None and way.mode == "lora" and not way.trains and way.identity_id == trained


def test_a_job_that_names_its_way_gets_it_or_none():
    forced = cheapest_way(ways(8), "lora")
    assert forced is not None and forced.mode == "lora"
    assert cheapest_way(ways(240), "reference").mode == "reference"  # type: ignore[union-attr]
    assert cheapest_way([w for w in ways(8) if w.mode == "reference"], "lora") is None
    assert "by LoRA (identity: lora)" in why_no_way("lora", ["no trainer"])


def test_each_way_has_its_own_pass_rate_and_prior():
    estimator = PassRateEstimator(priors={"portraits": PassRatePrior(mean=0.75, strength=4),
                                   "portraits+identity:reference": PassRatePrior(mean=0.5, strength=4)})
    assert estimator.mean("portraits", identity_key("headshots", "reference")) == 0.5
    assert estimator.mean("portraits", identity_key("headshots", "lora")) == 0.75
    assert estimator.mean("portraits", "headshots") == 0.75
