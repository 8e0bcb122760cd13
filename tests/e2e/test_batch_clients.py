"""Batches and evaluations through Genline's own client (sync and async) and `genline batches …`
/ `genline evaluate …` as a user runs them."""

import asyncio
import json

from genline_client import AsyncGenline, Genline, NotFound
from tests.e2e.test_batches import BULK_PRICE
from tests.e2e.test_jobs_cli import genline
from tests.scorer.conftest import blurred, png, rgb_photo

LINES = [{"custom_id": f"mug-{i}", "body": {"prompt": "a ceramic mug", "size": "64x64", "seed": i}} for i in range(3)]


def test_the_client_runs_a_batch_and_reads_each_line_back(tenant_factory, platform):
    tenant = tenant_factory(credits=500)
    with Genline(tenant.api_key, platform.ingest_url) as client:
        batch = client.batches.wait(client.batches.create(LINES, metadata={"shelf": "mugs"}), timeout=300)
        lines = list(client.batches.results(batch))
        assert client.batches.list()["data"][0]["id"] == batch["id"]
        assert client.batches.delete_file(batch["output_file_id"]) == {"id": batch["output_file_id"],
                                                                       "object": "file", "deleted": True}
        assert list(client.batches.results(batch, errors=True)) == []
        try:
            client.batches.get("batch_missing")
            raise AssertionError("a batch that does not exist was found")
        except NotFound as error:
            assert error.status == 404

    assert batch["status"] == "completed" and batch["metadata"] == {"shelf": "mugs"}
    assert sorted(line["custom_id"] for line in lines) == ["mug-0", "mug-1", "mug-2"]
    assert tenant.balance()["available"] == 500 - 3 * BULK_PRICE


def test_the_async_client_evaluates_images(tenant_factory, platform, tmp_path):
    tenant = tenant_factory(credits=50)
    sharp = tmp_path / "sharp.png"
    sharp.write_bytes(png(rgb_photo("coffee")))

    async def evaluate():
        async with AsyncGenline(tenant.api_key, platform.ingest_url) as client:
            now = await client.evaluations.create([sharp, png(blurred(rgb_photo("coffee"), 6))])
            later = await client.evaluations.wait(await client.evaluations.create_batch([sharp]), timeout=120)
            return now, later

    now, later = asyncio.run(evaluate())
    assert [image["passed"] for image in now["images"]] == [True, False]
    assert later["status"] == "completed" and later["images"][0]["passed"] is True


def test_the_cli_submits_a_batch_and_evaluates_files(tenant_factory, platform, tmp_path):
    tenant = tenant_factory(credits=500)
    as_tenant = {"api_url": platform.ingest_url, "api_key": tenant.api_key}
    requests = tmp_path / "mugs.jsonl"
    requests.write_text("".join(json.dumps({"method": "POST", "url": "/v1/images/generations"} | line) + "\n"
                                for line in LINES))
    blurry = tmp_path / "blurry.png"
    blurry.write_bytes(png(blurred(rgb_photo("coffee"), 6)))

    submitted = genline("batches", "submit", str(requests), "--output", str(tmp_path / "out.jsonl"), "--json",
                        **as_tenant)
    judged = genline("evaluate", str(blurry), **as_tenant)

    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["status"] == "completed"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert judged.returncode == 3 and "FAIL (" in judged.stdout and "sharpness" in judged.stdout
