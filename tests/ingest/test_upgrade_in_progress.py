"""Ingest while its events are written for the previous release (a rolling update from 0.1.0,
`GENLINE_EVENTS_COMPATIBLE_WITH=0.1.0`), on the real database, broker and S3: a job asking for
what 0.1.0's services cannot carry (`output_format`) is answered 503 `upgrade-in-progress` with
Retry-After, in the OpenAI shape on its routes, and nothing is published for it; a job that
asks for nothing new is accepted, and its JobSubmitted on the topic carries no member 0.1.0
does not know."""

import asyncio
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.common.bus.replay import read_topic_to_end
from services.common.contracts import topic_of
from services.common.releases import PREVIOUS
from tests.ingest.test_submission import assert_problem, ingest_client, submitted_jobs


@pytest.fixture(scope="module")
def upgrading(endpoints) -> Iterator[TestClient]:
    yield from ingest_client(endpoints, events_compatible_with=PREVIOUS.version)


def test_a_job_asking_for_what_the_previous_release_cannot_carry_waits_for_the_upgrade(upgrading):
    refused = upgrading.post("/v1/jobs", json={"prompt": "a red bicycle", "output_format": "jpeg"})
    problem = assert_problem(refused, 503, "upgrade-in-progress", "output_format", PREVIOUS.version)
    assert problem["options"] == ["output_format"] and refused.headers["retry-after"] == "60"

    openai = upgrading.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a red bicycle",
                                                             "output_format": "webp", "size": "64x64"})
    assert openai.status_code == 503 and openai.headers["retry-after"] == "60"
    assert openai.json()["error"]["code"] == "upgrade_in_progress"

    accepted = upgrading.post("/v1/jobs", json={"prompt": "a red bicycle", "images": 1, "candidates": 2})
    assert accepted.status_code == 202, accepted.text
    published = submitted_jobs(upgrading, 1)
    assert list(published) == [accepted.json()["id"]]  # the refused ones were never published


def test_what_is_published_meanwhile_names_no_member_the_previous_release_does_not_know(upgrading):
    accepted = upgrading.post("/v1/jobs", json={"prompt": "a lamp", "images": 1, "candidates": 2, "webhook_url": None})
    assert accepted.status_code == 202, accepted.text
    settings = upgrading.app_settings
    records = asyncio.run(read_topic_to_end(settings.kafka_bootstrap, topic_of("ingest", settings.topic_namespace)))
    bodies = {body["job_id"]: body for body in (json.loads(record.value) for record in records)}
    assert "output_format" not in bodies[accepted.json()["id"]]["job"]
