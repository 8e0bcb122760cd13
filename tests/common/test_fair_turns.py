"""A consumer in fair turns (read_ahead.py) against the real broker and PostgreSQL: another
tenant's events go ahead of a flood that came first (and past a flood that holds the lanes), a
tenant's interactive job ahead of its bulk ones, a tenant whose events are long takes its share
of the time, not of the events, each job's events stay in their order, the
buffer stays within its bound, and what was not applied comes again after a stop while what was
applied is not applied twice; a partition is committed only up to its lowest record not applied."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord, TopicPartition

from genline_stack.embedded import create_topics
from services.common.bus.envelope import Envelope, envelop, from_kafka, to_kafka
from services.common.bus.positions import Unapplied
from services.common.contracts import JobCancelRequested, JobSubmitted, SealedText, all_topics, topic_of
from services.common.runtime import ServiceRuntime
from tests.conftest import settings_for
from tests.kafka import publish_envelopes, submitted


def step(job: JobSubmitted, n: int, **spec) -> Envelope:
    """The job's n-th event, its spec changed by `spec` (plan priority, job priority)."""
    changed = job.job.model_copy(update={"prompt": SealedText(clear=f"step {n}"), **spec})
    return envelop(job.model_copy(update={"job": changed}), "/test")


async def apply_in_turns(endpoints, envelopes: list[Envelope], *, tag: str | None = None,
                         on_event: Callable | None = None, want: int | None = None, **settings_overrides) -> list:
    """Publish `envelopes` on a topic of their own, then run a consumer in fair turns until it
    has applied `want` (all by default); returns (job id, step) in the order applied."""
    tag = tag or uuid.uuid4().hex[:8]
    settings = settings_for(endpoints, topic_namespace=f"fair{tag}", consumer_fair_turns=True,
                            **{"consumer_lanes": 1} | settings_overrides)
    await create_topics(settings.kafka_bootstrap, all_topics(settings.topic_namespace))
    await publish_envelopes(endpoints.kafka_bootstrap, envelopes, lambda _: topic_of("ingest", settings.topic_namespace))
    return await consume_in_turns(settings, tag, want or len(envelopes), on_event)


async def consume_in_turns(settings, tag: str, want: int, on_event: Callable | None = None,
                           linger_s: float = 0) -> list:
    rt = ServiceRuntime(f"fair_{tag}", settings, migrations_package=None)
    applied: list[tuple] = []

    @rt.consumer.on(JobSubmitted)
    async def record_step(ctx, event):
        if on_event is not None:
            await on_event(rt, event)
        applied.append((event.job_id, int(event.job.prompt.clear.removeprefix("step "))))

    rt.consume_topics(["ingest"])
    await rt.start()
    try:
        for _ in range(900):
            if len(applied) >= want:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(linger_s)  # for what should not be applied to show, if it were
    finally:
        await rt.stop()
    return applied


async def test_another_tenants_jobs_go_ahead_of_a_flood_that_came_first(endpoints):
    flood = [submitted(tenant="t-flood") for _ in range(60)]
    others = [submitted(tenant="t-other") for _ in range(3)]
    envelopes = [step(job, n) for job in flood for n in range(4)] + [step(job, 0) for job in others]
    applied = await apply_in_turns(endpoints, envelopes)

    assert len(applied) == len(envelopes)
    flood_ids = {job.job_id for job in flood}
    places = {job.job_id: applied.index((job.job_id, 0)) for job in others}
    flood_before = {job_id: sum(1 for done in applied[:place] if done[0] in flood_ids) for job_id, place in places.items()}
    # 240 events of the flood came first; in partition order the others would wait for all.
    assert max(flood_before.values()) < 240 // 10, flood_before
    for job in flood:
        assert [n for job_id, n in applied if job_id == job.job_id] == [0, 1, 2, 3]


async def test_a_higher_plan_is_a_larger_share_and_the_plans_below_still_get_theirs(endpoints):
    flood = [submitted(tenant="t-enterprise") for _ in range(80)]
    others = [submitted(tenant="t-free") for _ in range(10)]
    envelopes = [step(job, 0, priority=2) for job in flood] + [step(job, 0) for job in others]
    applied = await apply_in_turns(endpoints, envelopes)

    free = {job.job_id for job in others}
    first_twenty = ["free" if job_id in free else "enterprise" for job_id, _ in applied[:20]]
    # Four turns to one, from the first fetch on (a fetch may bring the free events a little later).
    assert 2 <= first_twenty.count("free") <= 6, first_twenty
    # The free tenant's ten take fifty turns in all, well before the flood's ninety are done.
    last_free = max(i for i, (job_id, _) in enumerate(applied) if job_id in free)
    assert last_free < 60, last_free


async def test_a_tenants_interactive_job_goes_ahead_of_its_bulk_ones(endpoints):
    bulk = [submitted(tenant="t-mixed") for _ in range(30)]
    interactive = submitted(tenant="t-mixed")
    envelopes = [step(job, 0, job_priority="bulk") for job in bulk] + [step(interactive, 0)]
    assert from_kafka(to_kafka(envelopes[0])).job_priority == "bulk"
    applied = await apply_in_turns(endpoints, envelopes)
    assert applied.index((interactive.job_id, 0)) < 3, applied.index((interactive.job_id, 0))


async def test_a_tenant_with_nothing_applied_takes_a_lane_more_past_a_flood_that_holds_the_lanes(endpoints):
    flood = [submitted(tenant="t-holding") for _ in range(5)]
    other = submitted(tenant="t-passing")
    passed = asyncio.Event()

    async def flood_waits_for_the_other(rt, event):
        # The flood's events hold the one lane until the other tenant's event has been applied.
        if event.job_id == other.job_id:
            passed.set()
        else:
            await passed.wait()

    applied = await apply_in_turns(endpoints, [step(job, 0) for job in flood] + [step(other, 0)],
                                   on_event=flood_waits_for_the_other)
    assert applied[0] == (other.job_id, 0), applied
    assert sorted(applied[1:]) == sorted((job.job_id, 0) for job in flood)


async def test_a_tenant_with_nothing_applied_passes_a_busy_tenant_whose_turn_comes_first(endpoints):
    """The busy tenant's turn comes before the other's second event (a tie on the virtual clock,
    which the flood's interactive jobs win against the other's bulk one): the spare lane still
    goes to the other tenant, the first in turn among those with nothing being applied."""
    flood = [submitted(tenant="t-busy") for _ in range(5)]
    first, second = submitted(tenant="t-quiet"), submitted(tenant="t-quiet")
    passed = asyncio.Event()

    async def flood_waits_for_the_others_second_job(rt, event):
        if event.job_id == second.job_id:
            passed.set()
        elif event.job_id != first.job_id:
            await passed.wait()

    envelopes = [step(job, 0) for job in flood] + [step(first, 0), step(second, 0, job_priority="bulk")]
    applied = await apply_in_turns(endpoints, envelopes, on_event=flood_waits_for_the_others_second_job)
    assert applied[:2] == [(first.job_id, 0), (second.job_id, 0)], applied
    assert sorted(applied[2:]) == sorted((job.job_id, 0) for job in flood)


async def test_a_tenant_whose_events_are_long_takes_its_share_of_the_time_not_of_the_events(endpoints):
    """One lane, no spare: a tenant whose events take 3 s each against one whose events take
    next to nothing. Turn by turn, the short events would alternate with the long ones and the
    last of them wait for every long one; once a long event was timed, the next long turn costs
    what it took, and most of the short tenant's events go before the long tenant's third. (A
    short event is what its inbox write takes, up to a tenth of a second on a loaded machine:
    the long ones are long enough for twenty and more of those.)"""
    slow = [submitted(tenant="t-slow") for _ in range(3)]
    quick = [submitted(tenant="t-quick") for _ in range(30)]
    slow_ids = {job.job_id for job in slow}

    async def slow_events_take_their_time(rt, event):
        if event.job_id in slow_ids:
            await asyncio.sleep(3.0)

    envelopes = [step(job, 0) for job in slow] + [step(job, 0) for job in quick]
    applied = await apply_in_turns(endpoints, envelopes, on_event=slow_events_take_their_time,
                                   consumer_spare_lanes=False)
    assert len(applied) == len(envelopes)
    third_slow = [i for i, (job_id, _) in enumerate(applied) if job_id in slow_ids][2]
    quick_before = third_slow - 2
    assert quick_before > len(quick) * 2 // 3, [("slow" if job_id in slow_ids else "quick") for job_id, _ in applied]


async def test_the_read_ahead_stays_within_its_bound(endpoints):
    jobs = [submitted(tenant=f"t-bound-{n % 3}") for n in range(120)]
    waiting: list[int] = []

    async def note_waiting(rt, event):
        waiting.append(rt.consumer.read_ahead.waiting)

    applied = await apply_in_turns(endpoints, [step(job, 0) for job in jobs], on_event=note_waiting,
                                   consumer_read_ahead=10, consumer_batch_size=5)
    assert len(applied) == len(jobs)
    # Never more than its room is taken, and a full read-ahead pauses its partitions.
    assert max(waiting) <= 10, max(waiting)


async def test_what_was_not_applied_comes_again_and_what_was_applied_does_not(endpoints):
    """One job's first event never finishes before the consumer stops; the jobs behind it (on
    any partition) are applied meanwhile. Started again on the same group and inbox, the
    consumer applies that event and its job's next, and nothing else a second time."""
    tag = uuid.uuid4().hex[:8]
    stuck, rest = submitted(tenant="t-stuck"), [submitted(tenant=f"t-free-{n}") for n in range(20)]
    envelopes = [step(stuck, 0), step(stuck, 1)] + [step(job, 0) for job in rest]

    async def never_finish_the_stuck_job(rt, event):
        if event.job_id == stuck.job_id:
            await asyncio.sleep(3600)

    first = await apply_in_turns(endpoints, envelopes, tag=tag, on_event=never_finish_the_stuck_job, want=20,
                                 consumer_lanes=2, kafka_commit_interval_ms=100)
    assert sorted(first) == sorted((job.job_id, 0) for job in rest)

    settings = settings_for(endpoints, topic_namespace=f"fair{tag}", consumer_fair_turns=True)
    again = await consume_in_turns(settings, tag, want=2, linger_s=2)
    assert again == [(stuck.job_id, 0), (stuck.job_id, 1)]


def record(offset: int, partition: int = 0) -> ConsumerRecord:
    return ConsumerRecord("t", partition, offset, 0, 0, None, b"", None, 0, 0, [])


def test_a_partition_commits_up_to_its_lowest_record_not_applied():
    unapplied, tp = Unapplied(), TopicPartition("t", 0)
    batch = [record(offset) for offset in range(10, 15)]
    unapplied.fetched(batch)
    epochs = {r.offset: unapplied.hold(r) for r in batch if r.offset != 12}  # 12 is not this consumer's to apply
    assert unapplied.committable(tp) == 10
    for offset in (11, 13, 14):
        unapplied.settle(record(offset), epochs[offset])
    assert unapplied.committable(tp) == 10  # 10 still runs: everything after it comes again on a crash
    unapplied.settle(record(10), epochs[10])
    assert unapplied.committable(tp) == 15


def test_a_partition_fetched_again_from_below_starts_a_new_epoch():
    unapplied, tp = Unapplied(), TopicPartition("t", 0)
    unapplied.fetched([record(5), record(6)])
    old = unapplied.hold(record(6))
    assert unapplied.fetched([record(6), record(7)]) == {tp}  # given back at its committed offset
    new = unapplied.hold(record(6))
    assert unapplied.settle(record(6), old) is None and unapplied.committable(tp) == 6
    assert unapplied.settle(record(6), new) == tp and unapplied.committable(tp) == 8


def test_an_event_carries_its_jobs_turn_from_the_event_that_caused_it():
    job = submitted(tenant="t-turns")
    cause = step(job, 0, priority=2, job_priority="bulk")
    assert (cause.plan_priority, cause.job_priority) == (2, "bulk")
    cancel = JobCancelRequested(job_id=job.job_id, tenant_id="t-turns", reason="no longer needed",
                                requested_at=datetime.now(UTC))
    caused = from_kafka(to_kafka(envelop(cancel, "/test", cause=cause)))
    assert (caused.plan_priority, caused.job_priority) == (2, "bulk")
    other_job = cancel.model_copy(update={"job_id": submitted().job_id})
    assert envelop(other_job, "/test", cause=cause).plan_priority == 0  # a turn is its own job's only
