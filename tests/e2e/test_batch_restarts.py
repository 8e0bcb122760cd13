"""A batch of 1,000 lines with every service killed and started again in the middle: every line
ends in the output file under its custom_id, one job per line, each charged once. The batch runs
on a fleet of its own (a local provider that paints no defects, so that every line delivers and
the count is exact), whose services the test may kill without disturbing the others'."""

import io
import time

import openai
import psycopg
import pytest

from genline_stack.fleet import SERVICES
from tests.e2e.conftest import make_tenant, own_fleet
from tests.e2e.test_batches import BULK_PRICE, image_line, jsonl, results, wait_ended

pytestmark = pytest.mark.own_stack  # a fleet of its own, restarted or flooded

LINES = 1_000
# One local provider that paints without latency or defects.
REGISTRY = {"providers": {"local-painter": {
    "adapter": "local", "models": [{"name": "local-painter", "version": "1"}],
    "capabilities": {"max_side": 2048, "max_megapixels": 4.2, "max_images_per_request": 8},
    "price": {"per_image_micro_usd": 4000}, "concurrency": 64, "latency": {"base_s": 0, "per_image_s": 0},
    "pass_rate_prior": {"mean": 0.95, "strength": 4}, "local": {"defect_rate": 0.0, "failure_rate": 0.0,
                                                                "latency_s": 0}}}}


@pytest.fixture(scope="module")
def fleet(endpoints, tmp_path_factory):
    with own_fleet(endpoints, tmp_path_factory.mktemp("batch-restarts"), "batches", REGISTRY,
                   {"GENLINE_BATCH_WINDOW": "64"}) as fleet:
        yield fleet


def completed(client: openai.OpenAI, batch_id: str, at_least: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while client.batches.retrieve(batch_id).request_counts.completed < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} lines completed after {timeout_s}s"
        time.sleep(0.5)


def settlements(fleet, job_ids: list[str]) -> set[int]:
    """How many settlements each job has in the ledger."""
    with psycopg.connect(fleet.endpoints.database_url) as conn:
        rows = conn.execute(f'SELECT job_id::text, count(*) FILTER (WHERE state = \'posted\') FROM "{fleet.schema("ledger")}"'
                            ".transfers WHERE job_id::text = ANY(%s) GROUP BY job_id", [job_ids]).fetchall()
    return {count for _, count in rows} | ({0} if len(rows) < len(job_ids) else set())


def test_a_batch_survives_every_service_restarted_and_charges_each_line_once(endpoints, fleet):
    tenant = make_tenant(endpoints, fleet, 10 * LINES)
    client = openai.OpenAI(base_url=f"{fleet.ingest_url}/v1", api_key=tenant.api_key, max_retries=5)
    lines = [image_line(f"line-{i}", seed=i) for i in range(LINES)]
    uploaded = client.files.create(file=("restart.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/images/generations",
                                  completion_window="24h")

    completed(client, batch.id, at_least=LINES // 10)
    for name in SERVICES:
        fleet.kill(name)
    # Ingest first: the router opens a resumed attempt's prompt with ingest's data key, and gives
    # the attempt up after a few quick tries while ingest does not answer.
    for name in sorted(SERVICES, key=lambda name: name != "ingest"):
        fleet.restart(name)
    ended = wait_ended(client, batch.id, timeout_s=1200)

    errors = results(client, ended.error_file_id) if ended.error_file_id else []
    assert ended.status == "completed" and ended.request_counts.completed == LINES, (ended.request_counts, errors)
    output = results(client, ended.output_file_id)
    assert sorted(line["custom_id"] for line in output) == sorted(f"line-{i}" for i in range(LINES))
    job_ids = [line["response"]["body"]["job_id"] for line in output]
    assert len(set(job_ids)) == LINES
    assert settlements(fleet, job_ids) == {1}
    assert tenant.balance() == {"posted": 10 * LINES - LINES * BULK_PRICE, "pending": 0,
                                "available": 10 * LINES - LINES * BULK_PRICE}
