"""Delivery of a video clip on the real broker, PostgreSQL and object store (SeaweedFS): the
delivery service, run in this process on topics and a schema of its own, is told a clip was
selected (CandidatesScored) and publishes it; its presigned link answers a Range request
with 206, the right Content-Range and video/mp4, the whole file has its index before its
media and is what the receipt says; JobErased and the retention sweeper delete the clip and
its poster as they do an image and its thumbnail."""

import asyncio
import hashlib
import io
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import av
import httpx
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from PIL import Image

from genline_stack.embedded import create_topics
from genline_stack.ports import free_port
from services.common import video
from services.common.bus.envelope import envelop, from_kafka
from services.common.contracts import (
    CandidateScore,
    CandidatesScored,
    DeliveredImage,
    Event,
    JobDelivered,
    JobErased,
    RetentionSet,
    all_topics,
    topic_of,
)
from services.common.provenance import read_manifest
from services.common.storage import AttemptKeys, Blob, ObjectStore, candidate_prefix
from services.delivery import store
from services.delivery.app import build
from services.delivery.retention import RetentionSweeper
from services.delivery.settings import DeliverySettings
from tests.kafka import publish_envelopes

pytestmark = pytest.mark.processes  # runs the delivery service


def clip_with_index_last(frames: int = 48, width: int = 320, height: int = 192, fps: int = 24) -> bytes:
    """An H.264 MP4 as a provider may send one: its index (`moov`) after the media."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:height, :width + 3 * frames]
    base = np.stack([120 + 60 * np.sin(xx / 11), 110 + 50 * np.cos(yy / 7), 100 + 40 * np.sin((xx + yy) / 19)], -1)
    base = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 3 * i: 3 * i + width]),
                                                             format="rgb24")))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def top_level_boxes(data: bytes) -> list[bytes]:
    """The MP4's top-level box types, in file order."""
    boxes, position = [], 0
    while position + 8 <= len(data):
        size, kind = int.from_bytes(data[position:position + 4], "big"), data[position + 4:position + 8]
        if size == 1:
            size = int.from_bytes(data[position + 8:position + 16], "big")
        boxes.append(kind)
        position += size if size >= 8 else len(data)
    return boxes


@pytest.fixture
def settings(endpoints) -> DeliverySettings:
    suffix = uuid.uuid4().hex[:8]
    return endpoints.settings(DeliverySettings, environment="test", topic_namespace=f"t{suffix}",
                              schema_name=f"delivery_{suffix}", http_port=free_port(),
                              kafka_session_timeout_ms=6000, retention_sweep_interval_s=3600.0)


@asynccontextmanager
async def running_delivery(settings: DeliverySettings):
    await create_topics(settings.kafka_bootstrap, all_topics(settings.topic_namespace))
    runtime, _ = build(settings)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def publish(settings: DeliverySettings, *events: Event) -> None:
    await publish_envelopes(settings.kafka_bootstrap, [envelop(event, "/test") for event in events],
                            lambda envelope: topic_of(envelope.event.publisher, settings.topic_namespace))


async def delivered_of(settings: DeliverySettings, job_id: uuid.UUID, timeout_s: float = 90) -> JobDelivered:
    """The JobDelivered delivery publishes for the job, read from the start of its topic."""
    topic = topic_of("delivery", settings.topic_namespace)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        while not (partitions := consumer.partitions_for_topic(topic)):
            await consumer.topics()
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for record in (r for records in batch.values() for r in records):
                event = from_kafka(record).event
                if getattr(event, "job_id", None) == job_id:
                    assert isinstance(event, JobDelivered), event
                    return event
        raise TimeoutError(f"delivery published nothing for job {job_id} in {timeout_s}s")
    finally:
        await consumer.stop()


async def selected_clip(settings: DeliverySettings, objects: ObjectStore, tenant_id: str,
                        source: bytes) -> tuple[uuid.UUID, str]:
    """A clip stored as the router stores a candidate, and the scorer's selection of it
    published; the job and the candidate's key."""
    job_id = uuid.uuid4()
    key = AttemptKeys(tenant_id, job_id, 1).candidate(0, "video/mp4")
    await objects.put(objects.internal_bucket, key, content=Blob(source, "video/mp4"))
    score = CandidateScore(index=0, provider="local-video", key=key, sha256=hashlib.sha256(source).hexdigest(),
                           size_bytes=len(source), media_type="video/mp4", passed=True, score=0.9, dimensions={},
                           model="local-clip", model_version="1")
    await publish(settings, CandidatesScored(job_id=job_id, tenant_id=tenant_id, attempt=1, images=1, scores=[score],
                                             selected=[0], selected_scores=[score], template="text-to-video"))
    return job_id, key


async def keys_under(objects: ObjectStore, bucket: str, prefix: str) -> set[str]:
    return {obj.key for obj in await objects.list_objects(bucket, prefix)}


def test_a_delivered_clip_streams_with_range_requests_and_is_what_its_receipt_says(settings, object_store):
    source = clip_with_index_last()
    assert top_level_boxes(source).index(b"mdat") < top_level_boxes(source).index(b"moov")

    async def scenario() -> tuple[DeliveredImage, list[httpx.Response]]:
        async with running_delivery(settings):
            job_id, _ = await selected_clip(settings, object_store, f"tenant-{uuid.uuid4().hex[:6]}", source)
            image = (await delivered_of(settings, job_id)).images[0]
        async with httpx.AsyncClient(timeout=30) as http:
            responses = [await http.get(image.url, headers={"Range": "bytes=1000-4999"}),
                         await http.get(image.url, headers={"Range": "bytes=-500"}),
                         await http.get(image.url),
                         await http.get(image.thumbnail_url or "")]
        return image, responses

    image, (middle, tail, whole, poster) = asyncio.run(scenario())

    assert middle.status_code == 206, middle.text
    assert middle.headers["content-range"] == f"bytes 1000-4999/{image.size_bytes}"
    assert middle.headers["content-type"] == "video/mp4" and len(middle.content) == 4000
    assert tail.status_code == 206 and tail.headers["content-range"] == \
           f"bytes {image.size_bytes - 500}-{image.size_bytes - 1}/{image.size_bytes}"
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    data = whole.content
    assert middle.content == data[1000:5000] and tail.content == data[-500:]
    boxes = top_level_boxes(data)
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # a player starts before the whole file has come
    assert hashlib.sha256(data).hexdigest() == image.sha256 and len(data) == image.size_bytes
    info = video.probe(data)
    assert (image.media_type, image.codec, image.frames, image.fps, image.duration_ms) == \
           ("video/mp4", info.codec, info.frames, info.fps, info.duration_ms) == ("video/mp4", "h264", 48, 24.0, 2000)
    assert (image.width, image.height) == (info.width, info.height) == (320, 192)
    assert image.key.endswith("/1.mp4") and image.thumbnail_key and image.thumbnail_key.endswith("/1.thumb.webp")
    reading = read_manifest(data, "video/mp4", anchors_pem=None)
    assert reading.present and reading.label == image.manifest_label
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(poster.content)) as opened:
        assert opened.format == "WEBP" and opened.size == (256, 154)


def test_job_erased_deletes_the_clip_its_poster_and_its_candidate(settings, object_store):
    tenant_id = f"tenant-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[set[str], set[str], set[str], set[str]]:
        async with running_delivery(settings):
            job_id, _ = await selected_clip(settings, object_store, tenant_id, clip_with_index_last(frames=12))
            await delivered_of(settings, job_id)
            public_before = await keys_under(object_store, object_store.public_bucket, f"{tenant_id}/")
            internal_before = await keys_under(object_store, object_store.internal_bucket,
                                               candidate_prefix(tenant_id, job_id))
            await publish(settings, JobErased(job_id=job_id, tenant_id=tenant_id, requested_at=datetime.now(UTC)))
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline:
                public = await keys_under(object_store, object_store.public_bucket, f"{tenant_id}/")
                internal = await keys_under(object_store, object_store.internal_bucket,
                                            candidate_prefix(tenant_id, job_id))
                if not public and not internal:
                    break
                await asyncio.sleep(0.3)
        return public_before, internal_before, public, internal

    public_before, internal_before, public_after, internal_after = asyncio.run(scenario())

    assert {key.rsplit("/", 1)[1] for key in public_before} == {"1.mp4", "1.thumb.webp"}
    assert len(internal_before) == 1
    assert public_after == set() and internal_after == set()


async def retention_applied(runtime, tenant_id: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with runtime.pool.connection() as conn:
            if any(rule["tenant_id"] == tenant_id for rule in await store.retention_rules(conn)):
                return
        await asyncio.sleep(0.3)
    raise TimeoutError(f"delivery never applied the retention of {tenant_id}")


def test_the_retention_sweeper_deletes_a_clip_and_its_poster_past_the_tenant_s_retention(settings, object_store):
    tenant_id = f"tenant-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[set[str], int, int, set[str]]:
        async with running_delivery(settings) as runtime:
            job_id, _ = await selected_clip(settings, object_store, tenant_id, clip_with_index_last(frames=12))
            await delivered_of(settings, job_id)
            published = await keys_under(object_store, object_store.public_bucket, f"{tenant_id}/")
            now = datetime.now(UTC)
            sweeper = RetentionSweeper(runtime, object_store, settings=settings)
            await publish(settings, RetentionSet(tenant_id=tenant_id, outputs_days=1, set_at=now))
            await retention_applied(runtime, tenant_id)
            early = await sweeper.sweep_once(now + timedelta(hours=23))  # younger than a day: kept
            deleted = await sweeper.sweep_once(now + timedelta(days=1, hours=1))
            left = await keys_under(object_store, object_store.public_bucket, f"{tenant_id}/")
        return published, early, deleted, left

    published, early, deleted, left = asyncio.run(scenario())

    assert {key.rsplit("/", 1)[1] for key in published} == {"1.mp4", "1.thumb.webp"}
    assert early == 0 and deleted == 2 and left == set()
