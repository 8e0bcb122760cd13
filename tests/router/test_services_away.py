"""An attempt whose prompt the router cannot open, because ingest's data-key API does not answer
(ingest restarts), waits for it with its claim held and none of its tries spent, for as long
as the job's deadline allows: the router on the real broker, PostgreSQL and S3, and the key
API a real HTTP server that answers 503 while "ingest" is away. A crash of a service never
fails a job; only the job's deadline ends the wait, as it ends any attempt that starts late."""

import base64
import os
import uuid

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.contracts import CandidatesGenerated, GenerationFailed
from services.common.sealing import JobField, seal
from tests.router.service import RouterTopic, credits_reserved, job_spec, publish, router_settings, running_router
from tests.router.stubs import serve

pytestmark = pytest.mark.processes  # runs a Genline service

MAX_TRIES = 2
PAINTER = {"adapter": "local", "models": [{"name": "local-painter", "version": "1"}],
           "capabilities": {"max_side": 2048, "max_megapixels": 4.2, "max_images_per_request": 8},
           "price": {"per_image_micro_usd": 4000}, "concurrency": 8, "latency": {"base_s": 0, "per_image_s": 0},
           "local": {"defect_rate": 0.0, "failure_rate": 0.0, "latency_s": 0}}


class RestartingIngest:
    """Ingest's data-key route, answering 503 to its first `away_for` requests (a proxy in
    front of a restarting ingest answers so), then each job's key."""

    def __init__(self, away_for: int) -> None:
        self.away_for, self.asked = away_for, 0
        self.keys: dict[str, bytes] = {}

    def app(self) -> Starlette:
        async def job_key(request: Request) -> JSONResponse:
            self.asked += 1
            if self.asked <= self.away_for:
                return JSONResponse({"type": "/problems/unavailable", "status": 503}, status_code=503)
            job_id = request.path_params["job_id"]
            return JSONResponse({"job_id": job_id, "key": base64.b64encode(self.keys[job_id]).decode()})

        return Starlette(routes=[Route("/internal/v1/jobs/{job_id}/data-key", job_key)])

    def sealed_job(self, **fields):
        job_id, key = uuid.uuid4(), os.urandom(32)
        self.keys[str(job_id)] = key
        return job_spec(job_id=job_id, prompt=seal(key, JobField(job_id, "prompt"), text="a red fox"), **fields)


def settings_of(endpoints, tmp_path, url: str):
    return router_settings(endpoints, tmp_path, {"painter": PAINTER}, data_key_url=url, attempt_max_tries=MAX_TRIES,
                           service_wait_s=0.05, service_wait_max_s=0.2)


async def test_an_attempt_waits_for_the_data_key_api_past_its_tries_and_generates(endpoints, tmp_path):
    # More refusals than the attempt has tries: each one given up and claimed again would spend them all.
    ingest = RestartingIngest(away_for=MAX_TRIES + 3)
    with serve(ingest.app()) as url:
        settings = settings_of(endpoints, tmp_path, url)
        spec = ingest.sealed_job()
        async with running_router(settings), RouterTopic(settings) as topic:
            await publish(settings, credits_reserved(spec))
            event = await topic.wait_for(spec.job_id, 1, timeout_s=90)
    assert isinstance(event, CandidatesGenerated), event
    assert len(event.candidates) == spec.candidates and ingest.asked > MAX_TRIES + 3


async def test_an_attempt_still_waiting_at_its_deadline_fails_on_the_deadline(endpoints, tmp_path):
    ingest = RestartingIngest(away_for=10**9)
    with serve(ingest.app()) as url:
        settings = settings_of(endpoints, tmp_path, url)
        spec = ingest.sealed_job(deadline_s=3)
        async with running_router(settings), RouterTopic(settings) as topic:
            await publish(settings, credits_reserved(spec))
            event = await topic.wait_for(spec.job_id, 1, timeout_s=90)
    assert isinstance(event, GenerationFailed), event
    assert event.failure_code == "deadline_exceeded" and "waited" in event.reason, event
