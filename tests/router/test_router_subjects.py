"""Orders of a subject through the router service, on the real broker, PostgreSQL and S3, with
the local portrait model and trainer and the subject's key served at ingest's data-key route:

* an order that trains announces it (IdentityPlanned), waits for the training, copies the
  weights into the bucket (IdentityTrained) and generates every candidate in its style, with the
  LoRA; a later order of the subject reuses the identity, however small;
* two orders racing for one subject pay one training; a small order goes by reference, its
  verdicts counted under the template and that way; a rework asks only for what each style misses;
* an order by reference waits for its subject's key while ingest restarts, spending no tries;
* an order canceled while it trains cancels the training, and the order that waited for it goes
  on by reference; an order whose training failed goes on by reference, and the next order of its
  subject trains at another trainer; an erased subject's identities are gone, however often the
  erasure comes."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from services.common.bus.envelope import envelop
from services.common.contracts import (
    CandidatesGenerated,
    GenerationFailed,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    JobCancelRequested,
    StyleSpec,
    SubjectChanged,
)
from services.common.storage import StorageError
from tests.router.service import (
    RouterTopic,
    credits_reserved,
    job_spec,
    publish,
    rework,
    router_settings,
    running_router,
    score,
)
from tests.router.subject_photos import astronaut_photos, sealed_subject, serving_keys

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

STYLES = [StyleSpec(name=name, prompt=f"{name} light", params={"backdrop": colour, "light": light})
          for name, colour, light in (("studio", "#e8e4dc", "studio"), ("window", "slategray", "window"),
                                      ("dark", "#20242c", "dramatic"), ("park", "darkolivegreen", "golden"),
                                      ("soft", "lightsteelblue", "soft"), ("white", "white", "soft"))]
PORTRAITS = {"adapter": "local", "models": [{"name": "local-portrait", "version": "1"}],
             "capabilities": {"max_images_per_request": 4, "identity": ["lora", "reference"], "subjects_only": True},
             "price": {"per_image_micro_usd": 4000}, "concurrency": 8, "latency": {"base_s": 0.0, "per_image_s": 0.0},
             "identity_pass_rate_prior": {"lora": {"mean": 0.85, "strength": 4},
                                          "reference": {"mean": 0.55, "strength": 4}},
             "local": {"defect_rate": 0.0}}


def trainer(expected_s: float) -> dict:
    return {"adapter": "local", "models": [{"name": "local-lora-trainer", "version": "1"}],
            "capabilities": {"stages": []}, "price": {}, "concurrency": 2,
            "trainer": {"model": {"name": "local-lora-trainer", "version": "1"}, "base": "genline-local-faces",
                        "price": {"per_run_micro_usd": 450_000}, "expected_s": expected_s, "timeout_s": 600,
                        "poll_interval_s": 0.2}}


@pytest.fixture(scope="module")
def keys():
    with serving_keys() as served:
        yield served


def settings_for(endpoints, tmp_path, keys, training_s: float = 1.5):
    return router_settings(endpoints, tmp_path, {"portraits": PORTRAITS, "trainer": trainer(training_s)},
                           data_key_url=keys[1], training_look_interval_s=0.2, identity_wait_s=2.0)


def order(subject, images: int = 6, candidates: int = 12, **fields):
    return job_spec(images=images, candidates=candidates, prompt="a professional headshot", subject=subject,
                    styles=STYLES, **fields)


async def until_found(topic: RouterTopic, check, timeout_s: float = 90):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := check(topic.events)) is None or found == []:
        assert asyncio.get_running_loop().time() < deadline, f"{check.__name__} found nothing in {timeout_s}s"
        await topic.read_some()
    return found


def of_type(kind, job_id):
    def check(events):
        return [e for e in events if isinstance(e, kind) and e.job_id == job_id] or None
    check.__name__ = f"{kind.__name__} of {job_id}"
    return check


def generated(job_id, attempt: int = 1):
    def check(events):
        return next((e for e in events if isinstance(e, CandidatesGenerated) and e.job_id == job_id
                     and e.attempt == attempt), None)
    check.__name__ = f"attempt {attempt} of {job_id}"
    return check


async def identity_rows(router, subject_id) -> list[dict]:
    async with router.runtime.pool.connection() as conn:
        return await (await conn.execute("SELECT identity_id, state, job_id, weights_key, cleanup, handle"
                                         " FROM identities WHERE subject_id = %s", [subject_id])).fetchall()


async def test_an_order_trains_its_identity_then_makes_each_candidate_in_its_style_and_a_later_one_reuses_it(
        endpoints, object_store, tmp_path, keys):
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    settings = settings_for(endpoints, tmp_path, keys)
    first = order(subject, identity="lora")
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(first))
        [planned] = await until_found(topic, of_type(IdentityPlanned, first.job_id))
        [trained] = await until_found(topic, of_type(IdentityTrained, first.job_id))
        event = await until_found(topic, generated(first.job_id))
        later = order(subject, images=1, candidates=2)  # small: only a trained identity makes LoRA its way
        await publish(settings, credits_reserved(later))
        [reused] = await until_found(topic, of_type(IdentityPlanned, later.job_id))
        again = await until_found(topic, generated(later.job_id))
        rows = await identity_rows(router, subject.subject_id)
    assert planned.trains and planned.use.mode == "lora" and planned.use.provider == "trainer"
    assert planned.expected_cost_micro_usd == 450_000
    assert trained.identity_id == planned.use.identity_id and trained.cost_micro_usd == 450_000
    assert trained.trigger_word == subject.trigger_word and trained.photo_set_sha256 == subject.photo_set_sha256
    weights = await object_store.get(object_store.internal_bucket, trained.weights_key)
    assert len(weights) == trained.weights_size_bytes and weights[:2] == b"PK"  # the local model's zip of faces
    assert isinstance(event, CandidatesGenerated) and len(event.candidates) == 12
    assert [c.style for c in event.candidates] == [STYLES[c.index % 6].name for c in event.candidates]
    assert {c.provider for c in event.candidates} == {"portraits"} and {c.media_type for c in event.candidates} == \
        {"image/jpeg"}
    assert not reused.trains and reused.use.mode == "lora" and reused.use.identity_id == trained.identity_id
    assert reused.use.weights_sha256 == trained.weights_sha256 and reused.expected_cost_micro_usd == 0
    assert len(again.candidates) == 2
    assert [(row["state"], row["job_id"]) for row in rows] == [("trained", first.job_id)]
    assert "weights" not in rows[0]["handle"]  # the local trainer's handle held them: the bucket's copy is kept


async def test_two_orders_racing_for_one_subject_pay_one_training(endpoints, object_store, tmp_path, keys):
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    settings = settings_for(endpoints, tmp_path, keys)
    orders = [order(subject, identity="lora"), order(subject, identity="lora")]
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, *(credits_reserved(spec) for spec in orders))
        planned = [(await until_found(topic, of_type(IdentityPlanned, spec.job_id)))[0] for spec in orders]
        for spec in orders:
            await until_found(topic, generated(spec.job_id))
        rows = await identity_rows(router, subject.subject_id)
    trained = [e for e in topic.events if isinstance(e, IdentityTrained)]
    assert sorted(p.trains for p in planned) == [False, True]
    assert len({p.use.identity_id for p in planned}) == 1 and len(rows) == 1 and rows[0]["state"] == "trained"
    assert [e.identity_id for e in trained] == [rows[0]["identity_id"]]


async def test_a_small_order_goes_by_reference_its_verdicts_teach_that_way_and_a_rework_asks_per_style(
        endpoints, object_store, tmp_path, keys):
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    settings = settings_for(endpoints, tmp_path, keys)
    small = order(subject, images=3, candidates=6)
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(small))
        [planned] = await until_found(topic, of_type(IdentityPlanned, small.job_id))
        first = await until_found(topic, generated(small.job_id))
        scores = [score(c, passed=c.index < 2) for c in first.candidates]
        needs = rework(small, attempt=1, needed=2, scores=scores).model_copy(update={"needed_by_style": {"park": 2}})
        await publish(settings, needs)
        second = await until_found(topic, generated(small.job_id, attempt=2))
        async with router.runtime.pool.connection() as conn:
            rates = await (await conn.execute("SELECT template, passed, failed FROM pass_rates")).fetchall()
    assert planned.use.mode == "reference" and not planned.trains and planned.use.provider == "portraits"
    assert {c.style for c in second.candidates} == {"park"} and min(c.index for c in second.candidates) >= 6
    assert [(r["template"], r["passed"], r["failed"]) for r in rates] == [("generic+identity:reference", 2, 4)]


async def test_an_order_by_reference_waits_for_its_subjects_key_past_its_tries_and_generates(endpoints, object_store,
                                                                                             tmp_path, keys):
    """Ingest restarts as the order starts: its subject's key is refused more often than the
    attempt has tries; the attempt waits for it, as it waits for its prompt's, spending none."""
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    settings = router_settings(endpoints, tmp_path, {"portraits": PORTRAITS, "trainer": trainer(1.5)},
                               data_key_url=keys[1], attempt_max_tries=2, service_wait_s=0.05, service_wait_max_s=0.2)
    small = order(subject, images=3, candidates=6, identity="reference")
    keys[0].away_until = keys[0].reads + 6
    try:
        async with running_router(settings), RouterTopic(settings) as topic:
            await publish(settings, credits_reserved(small))
            first = await until_found(topic, generated(small.job_id))
            failures = [e for e in topic.events if isinstance(e, GenerationFailed) and e.job_id == small.job_id]
    finally:
        keys[0].away_until = 0
    assert len(first.candidates) == 6 and not failures
    assert keys[0].reads > 6, "every refusal was waited out"


async def test_a_canceled_order_cancels_its_training_and_the_order_waiting_for_it_goes_by_reference(
        endpoints, object_store, tmp_path, keys):
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    settings = settings_for(endpoints, tmp_path, keys, training_s=120)
    trains, waits = order(subject, identity="lora"), order(subject)
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(trains))
        await until_found(topic, of_type(IdentityPlanned, trains.job_id))
        await publish(settings, credits_reserved(waits))
        [waiting] = await until_found(topic, of_type(IdentityPlanned, waits.job_id))
        while not (await identity_rows(router, subject.subject_id))[0]["handle"]:
            await asyncio.sleep(0.1)  # submitted: the provider bills what runs, so stopping it is the tenant's doing
        await publish(settings, JobCancelRequested(job_id=trains.job_id, tenant_id=trains.tenant_id, reason="changed my mind",
                                                   requested_at=datetime.now(UTC)))
        [stopped] = await until_found(topic, of_type(IdentityTrainingFailed, trains.job_id))
        event = await until_found(topic, generated(waits.job_id))
        moved = await until_found(topic, of_type(IdentityPlanned, waits.job_id))
        rows = await identity_rows(router, subject.subject_id)
    assert waiting.use.mode == "lora" and not waiting.trains
    assert stopped.failure_code == "canceled" and stopped.tenant_fault
    assert [p.use.mode for p in moved] == ["lora", "reference"]
    assert len(event.candidates) == 12 and [row["state"] for row in rows] == ["canceled"]


async def test_after_a_failed_training_the_order_goes_by_reference_and_the_next_trains_at_another_trainer(
        endpoints, object_store, tmp_path, keys):
    """The cheaper trainer fails its training at the provider: that order goes on by reference, and
    the next order of the subject trains at the other trainer, dearer but untried, and reuses nothing."""
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    failing, other = trainer(0.5), trainer(0.5)
    failing["trainer"]["price"], other["trainer"]["price"] = {"per_run_micro_usd": 10_000}, {"per_run_micro_usd": 50_000}
    failing["local"] = {"failure_rate": 1.0}
    settings = router_settings(endpoints, tmp_path, {"portraits": PORTRAITS, "cheap": failing, "other": other},
                               data_key_url=keys[1], training_look_interval_s=0.2, identity_wait_s=2.0)
    first, second = order(subject, images=12, candidates=48), order(subject, images=12, candidates=48)
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(first))
        [failed] = await until_found(topic, of_type(IdentityTrainingFailed, first.job_id))
        await until_found(topic, generated(first.job_id))
        moved = await until_found(topic, of_type(IdentityPlanned, first.job_id))
        await publish(settings, credits_reserved(second))
        [trained] = await until_found(topic, of_type(IdentityTrained, second.job_id))
        [planned] = await until_found(topic, of_type(IdentityPlanned, second.job_id))
        rows = await identity_rows(router, subject.subject_id)
    assert [(p.use.mode, p.use.provider, p.trains) for p in moved] == [("lora", "cheap", True),
                                                                       ("reference", "portraits", False)]
    assert failed.failure_code == "training_failed" and not failed.tenant_fault
    assert (planned.use.provider, planned.trains) == ("other", True) and trained.provider == "other"
    assert sorted((row["state"], str(row["job_id"])) for row in rows) == sorted(
        [("failed", str(first.job_id)), ("trained", str(second.job_id))])


async def test_an_erased_subjects_identities_are_gone_however_often_the_erasure_comes(
        endpoints, object_store, tmp_path, keys):
    subject = await sealed_subject(object_store, keys[0], astronaut_photos())
    settings = settings_for(endpoints, tmp_path, keys)
    spec = order(subject, images=1, candidates=2, identity="lora")
    erased = envelop(SubjectChanged(tenant_id=spec.tenant_id, subject_id=subject.subject_id, kind="person",
                                    state="erased", seq=3, changed_at=datetime.now(UTC)), "/test")
    async with running_router(settings) as router, RouterTopic(settings) as topic:
        await publish(settings, credits_reserved(spec))
        [trained] = await until_found(topic, of_type(IdentityTrained, spec.job_id))
        keys[0].erase(subject.subject_id)
        await publish(settings, erased, erased)
        for _ in range(300):
            rows = await identity_rows(router, subject.subject_id)
            if rows[0]["state"] == "erased" and rows[0]["cleanup"] is None:
                break
            await asyncio.sleep(0.1)
    assert [(r["state"], r["cleanup"], r["weights_key"], r["handle"]) for r in rows] == [("erased", None, None, None)]
    with pytest.raises(StorageError):
        await object_store.get(object_store.internal_bucket, trained.weights_key)
    assert uuid.UUID(str(rows[0]["identity_id"])) == trained.identity_id
