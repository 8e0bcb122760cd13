"""kill -9 the scorer and the delivery service mid-flight: no job or credit is lost, and
nothing is charged or delivered twice."""

import asyncio
import time
from collections import Counter

import psycopg

from services.common.bus.replay import read_topic_to_end
from services.common.contracts import TOPICS, JobDelivered
from tests.e2e.conftest import wait_caught_up

UNIT_PRICE = 10


def wait_until_some_job_is_past_generation(tenant, job_ids, timeout_s=120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(tenant.job(j)["state"] in ("scoring", "delivering", "succeeded") for j in job_ids):
            return
        time.sleep(0.05)
    raise AssertionError("no job reached scoring")


def delivered_per_job(database_url: str, job_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT job_id::text, count(*) FROM delivery.delivered_images"
                            " WHERE job_id::text = ANY(%s) GROUP BY job_id", [job_ids]).fetchall()
    return dict(rows)


def settlements_per_job(database_url: str, job_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT t.job_id::text, count(*) FROM ledger.entries e JOIN ledger.transfers t ON t.id = e.transfer_id"
            " WHERE e.kind = 'charge' AND t.job_id::text = ANY(%s) GROUP BY t.job_id", [job_ids]).fetchall()
    return dict(rows)


def test_killed_scorer_and_delivery_lose_nothing_and_do_nothing_twice(tenant_factory, platform, endpoints):
    tenant = tenant_factory()
    before = tenant.balance()
    job_ids = [tenant.submit(images=2, candidates=4, seed=i) for i in range(12)]
    wait_until_some_job_is_past_generation(tenant, job_ids)

    platform.kill("scorer")
    platform.kill("delivery")
    in_flight_at_kill = [j for j in job_ids if tenant.job(j)["state"] not in ("succeeded",)]
    job_ids += [tenant.submit(images=2, candidates=4, seed=100 + i) for i in range(4)]
    platform.restart("scorer")
    platform.restart("delivery")

    jobs = tenant.wait_settled(job_ids)

    assert in_flight_at_kill, "the kill came after every job had finished"
    assert {job["state"] for job in jobs.values()} == {"succeeded"}
    assert delivered_per_job(endpoints.database_url, job_ids) == dict.fromkeys(job_ids, 2)
    assert settlements_per_job(endpoints.database_url, job_ids) == dict.fromkeys(job_ids, 1)
    after = tenant.balance()
    assert before["available"] - after["available"] == len(job_ids) * 2 * UNIT_PRICE
    assert after["pending"] == 0
    # Once the services have applied every event and published every outbox row, the topic up to
    # its end holds every JobDelivered there will be, a second one of any job too.
    wait_caught_up(platform)
    records = asyncio.run(read_topic_to_end(endpoints.kafka_bootstrap, TOPICS["delivery"]))
    delivered_events = {dict(r.headers)["ce_id"]: r.key.decode() for r in records
                        if dict(r.headers)["ce_type"] == JobDelivered.event_type.encode()}
    per_job = Counter(job for job in delivered_events.values() if job in job_ids)
    assert per_job == dict.fromkeys(job_ids, 1), "a job was delivered under two different events"
