"""OpenAI's Batch API on the running services, through the official `openai` package: a JSONL
file uploaded and checked, its lines run as bulk jobs, output and error files that keep each
line's custom_id, counts, cancel, and each line charged once at the batch price."""

import io
import json
import time

import openai
import pytest

PROMPT = "a ceramic mug on a wooden table"
BULK_PRICE = 5  # generic, stable: 10 credits an image, half for bulk work


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def image_line(custom_id: str, **body) -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/images/generations",
            "body": {"model": "gpt-image-1", "prompt": PROMPT, "size": "64x64", "response_format": "url"} | body}


def wait_ended(client: openai.OpenAI, batch_id: str, timeout_s: float = 300):
    deadline = time.monotonic() + timeout_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.5)


def results(client: openai.OpenAI, file_id: str) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def test_a_batch_runs_every_line_and_keeps_each_custom_id(tenant_factory, platform):
    tenant = tenant_factory(credits=1_000)
    client = openai.OpenAI(base_url=f"{platform.ingest_url}/v1", api_key=tenant.api_key)
    lines = [image_line(f"sku-{i}", seed=i) for i in range(8)] + [image_line("too-few", n=0),
                                                                   image_line("no-model", model="no-such-model")]
    uploaded = client.files.create(file=("catalogue.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    assert uploaded.bytes == len(jsonl(lines)) and uploaded.purpose == "batch"
    assert client.files.content(uploaded.id).content == jsonl(lines)

    created = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/images/generations",
                                    completion_window="24h", metadata={"catalogue": "spring"})
    batch = wait_ended(client, created.id)

    assert batch.status == "completed" and batch.metadata == {"catalogue": "spring"}
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (10, 8, 2)
    output = results(client, batch.output_file_id)
    assert [line["custom_id"] for line in output] == [f"sku-{i}" for i in range(8)]
    jobs = [tenant.job(line["response"]["body"]["job_id"]) for line in output]
    assert all(line["response"]["status_code"] == 200 and line["response"]["body"]["data"][0]["url"] for line in output)
    assert [job["billing"]["charged"] for job in jobs] == [BULK_PRICE] * 8
    errors = {line["custom_id"]: line["response"] for line in results(client, batch.error_file_id)}
    assert errors["too-few"]["status_code"] == 400 and errors["too-few"]["body"]["error"]["param"] == "n"
    assert errors["no-model"]["status_code"] == 404
    assert client.batches.list().data[0].id == batch.id
    assert tenant.balance()["available"] == 1_000 - 8 * BULK_PRICE


def test_a_file_with_a_bad_line_is_refused_naming_it(tenant_factory, platform):
    client = openai.OpenAI(base_url=f"{platform.ingest_url}/v1", api_key=tenant_factory().api_key, max_retries=0)
    lines = jsonl([image_line("a"), image_line("a")])
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("dup.jsonl", io.BytesIO(lines)), purpose="batch")
    assert "line 2" in refused.value.message and refused.value.param == "file"
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_0123")


def test_a_cancelled_batch_stops_submitting_and_ends_with_what_ended(tenant_factory, platform):
    tenant = tenant_factory(credits=5_000)
    client = openai.OpenAI(base_url=f"{platform.ingest_url}/v1", api_key=tenant.api_key)
    uploaded = client.files.create(file=("many.jsonl", io.BytesIO(jsonl([image_line(f"l{i}") for i in range(200)]))),
                                   purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/images/generations",
                                  completion_window="24h")

    with pytest.raises(openai.ConflictError):  # the batch still reads it
        client.with_options(max_retries=0).files.delete(uploaded.id)
    cancelling = client.batches.cancel(batch.id)
    ended = wait_ended(client, batch.id)

    assert cancelling.status == "cancelling" and ended.status == "cancelled" and ended.cancelled_at
    counts = ended.request_counts
    assert counts.total == 200 and counts.completed + counts.failed == 200
    output, errors = results(client, ended.output_file_id), results(client, ended.error_file_id)
    assert (len(output), len(errors)) == (counts.completed, counts.failed)
    assert sorted(line["custom_id"] for line in output + errors) == sorted(f"l{i}" for i in range(200))
    never_ran = [line for line in errors if line["response"] is None]
    assert never_ran and {line["error"]["code"] for line in never_ran} == {"batch_cancelled"}

    for file_id in (uploaded.id, ended.output_file_id, ended.error_file_id):  # as OpenAI's files.delete
        deleted = client.files.delete(file_id)
        assert (deleted.id, deleted.deleted) == (file_id, True)
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(file_id)
    assert client.batches.retrieve(batch.id).input_file_id == uploaded.id
