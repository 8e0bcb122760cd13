"""Subjects on the running services, with real photographs: eight photos of one person (scikit-
image's astronaut, framed eight ways) with someone else among them (matplotlib's Grace Hopper
sample), two people in one photo, a blurred one and a near-duplicate, each refused with its
reason; what is kept is sealed with the subject's own key; another tenant's subject is unknown;
erasure and the retention leave nothing readable; an order names the subject, holds its training
line and releases it when the job trains nothing; the router's identity events move a subject
to trained or failed, announced by webhook."""

import asyncio
import base64
import io
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np
import psycopg
import pytest
from matplotlib import cbook
from PIL import Image, ImageFilter
from skimage import data

from genline_stack.portraits import jpeg, poses
from services.common.bus.envelope import envelop
from services.common.contracts import (
    DEFAULT_NAMESPACE,
    IdentityPlanned,
    IdentityTrained,
    IdentityTrainingFailed,
    IdentityUse,
    topic_of,
)
from services.common.quality.profiles import eyes_waiver
from services.common.sealing import SubjectField, open_bytes
from services.common.storage import ObjectStore
from services.ingest.key_encryption import keyring_of
from services.ingest.receipts.replay import ReceiptReplay, replay_receipts
from services.ingest.settings import IngestSettings
from tests.e2e.conftest import LEDGER_ADMIN_TOKEN, make_tenant, wait_for_audit
from tests.e2e.test_jobs_cli import genline
from tests.e2e.test_webhooks import Receiver, create_endpoint, verifies
from tests.kafka import publish_envelopes
from tests.polling import until
from tests.scorer import planted


def b64(photo: bytes) -> str:
    return base64.b64encode(photo).decode()


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    astronaut = Image.fromarray(data.astronaut())
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        grace = image.convert("RGB")
    pose = poses(astronaut)
    side_by_side = np.concatenate([np.asarray(astronaut), np.asarray(grace.resize((437, 512)))], axis=1)
    with Image.open(io.BytesIO(pose[0])) as first:  # the same picture, compressed again
        near_duplicate = jpeg(first, quality=70)
    with Image.open(io.BytesIO(pose[2])) as third:
        blurred = jpeg(third.filter(ImageFilter.GaussianBlur(6)))
    return {**{f"pose{i}": p for i, p in enumerate(pose)}, "grace": jpeg(grace), "two": jpeg(Image.fromarray(side_by_side)),
            "blurred": blurred, "near": near_duplicate}


def create(tenant, **body) -> httpx.Response:
    return tenant.http.post("/v1/subjects", json={"kind": "person", "name": "Ada"} | body, timeout=120)


def subject_key(endpoints, subject_id: str) -> bytes | None:
    with psycopg.connect(endpoints.database_url) as conn:
        row = conn.execute("SELECT kek_id, key FROM ingest.data_keys WHERE job_id = %s", [subject_id]).fetchone()
    keyring = keyring_of(endpoints.settings(IngestSettings))
    return keyring.unwrap(row[0], bytes(row[1]), job_id=uuid.UUID(subject_id)) if row else None


def ready_subject(tenant, photos, count: int = 4) -> dict:
    response = create(tenant, photos=[b64(photos[f"pose{i}"]) for i in range(count)])
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "ready"
    return response.json()


@pytest.fixture(scope="module")
def screened(photos, module_tenant):
    """A subject made in two requests (the odd one out in the middle of the first), and its tenant."""
    tenant = module_tenant
    first = create(tenant, photos=[b64(photos[name]) for name in ("pose0", "pose1", "grace", "pose2", "pose3")])
    assert first.status_code == 201, first.text
    upload = tenant.http.post("/v1/uploads", content=photos["pose6"], headers={"content-type": "image/jpeg"})
    assert upload.status_code == 201, upload.text
    subject_id = first.json()["id"]
    second = tenant.http.post(f"/v1/subjects/{subject_id}/photos", timeout=120, json={
        "photos": [b64(photos[name]) for name in ("two", "blurred", "near", "pose4", "pose5", "pose7")],
        "uploads": [upload.json()["id"]]})
    assert second.status_code == 200, second.text
    return tenant, first.json(), second.json()


@pytest.fixture(scope="module")
def module_tenant(endpoints, platform):
    tenant = make_tenant(endpoints, platform, 10_000)
    yield tenant
    tenant.http.close()


def test_eight_photos_of_one_person_make_a_ready_subject_and_every_other_photo_is_refused_with_its_reason(screened):
    _, first, second = screened
    verdicts = {v["source"]: v for v in first["photos"]}
    assert first["state"] == "ready" and first["photos_accepted"] == 4
    grace = verdicts["photos[2]"]
    assert not grace["accepted"] and grace["identity_distance"] >= 0.6
    assert grace["reasons"] == [f"another person: identity {grace['identity_distance']:.2f} from the subject's other"
                                " photos; at most 0.6"]
    assert all(v["accepted"] and v["identity_distance"] < 0.6 for s, v in verdicts.items() if s != "photos[2]")

    added = {v["source"]: v for v in second["added"]}
    assert "shows 2 faces" in added["photos[0]"]["reasons"][0]
    assert any("blurred (sharpness" in reason for reason in added["photos[1]"]["reasons"])
    assert added["photos[2]"]["near_duplicate_of"] == 1 and "nearly the same picture as photo 1" in \
        added["photos[2]"]["reasons"][0]
    assert [added[s]["accepted"] for s in ("photos[3]", "photos[4]", "photos[5]", "uploads[0]")] == [True] * 4
    subject = second["subject"]
    assert (subject["state"], subject["photos_accepted"], subject["photos_refused"]) == ("ready", 8, 4)
    assert [p["n"] for p in subject["photos"]] == list(range(1, 13))
    assert subject["trigger_word"].startswith("gl") and len(subject["photo_set_sha256"]) == 64
    assert subject["waived_checks"] == [], "her eyes are found: her candidates are held to open eyes"


def test_a_person_whose_eyes_the_detector_cannot_see_is_told_at_once_that_they_will_not_be_checked(module_tenant,
                                                                                                  photos, platform):
    in_glasses = []
    for name in ("pose0", "pose1", "pose3", "pose4", "pose5"):
        with Image.open(io.BytesIO(photos[name])) as pose:
            in_glasses.append(jpeg(Image.fromarray(planted.in_glasses(np.asarray(pose.convert("RGB"))))))
    response = create(module_tenant, name="Ada in glasses", photos=[b64(photo) for photo in in_glasses])
    assert response.status_code == 201, response.text
    subject = response.json()
    assert (subject["state"], subject["photos_accepted"]) == ("ready", 5), subject["photos"]
    assert all(photo["eyes"] is not None and photo["eyes"] < 2 for photo in subject["photos"])
    assert subject["waived_checks"] == [{"dimension": "eyes_open", "reason": eyes_waiver(faced=5, eyes_seen=0)}]
    assert subject["waived_checks"][0]["reason"].startswith("two open eyes are found in only 0 of the subject's 5"
                                                            " photos with one face")
    again = module_tenant.http.get(f"/v1/subjects/{subject['id']}").json()
    assert again["waived_checks"] == subject["waived_checks"]
    listed = {s["id"]: s for s in module_tenant.http.get("/v1/subjects", params={"limit": 100}).json()["data"]}
    assert (listed[subject["id"]]["photos"], listed[subject["id"]]["waived_checks"]) == ([], subject["waived_checks"])
    assert all(s["waived_checks"] == [] for id_, s in listed.items() if id_ != subject["id"]), "her eyes are seen"
    shown = genline("subjects", "show", subject["id"], api_url=platform.ingest_url, api_key=module_tenant.api_key)
    assert shown.returncode == 0, shown.stderr
    assert "eyes_open not checked: two open eyes are found in only 0 of the subject's 5 photos" in \
        " ".join(shown.stdout.split())


def test_photos_added_after_a_refused_one_are_numbered_after_it_again_and_again(module_tenant, photos):
    """A refused photo keeps its number: the photos added after it, each time with a refused
    one last, are numbered after every photo the subject was offered, never after its accepted ones."""
    first = create(module_tenant, name="Ada, refused last", photos=[b64(photos[name]) for name in
                                                                     ("pose0", "pose1", "pose2", "pose3", "grace")])
    assert first.status_code == 201, first.text
    subject_id, numbered = first.json()["id"], [1, 2, 3, 4, 5]
    for added in (("pose4", "two"), ("pose5", "blurred"), ("pose6", "grace")):
        response = module_tenant.http.post(f"/v1/subjects/{subject_id}/photos", timeout=120,
                                           json={"photos": [b64(photos[name]) for name in added]})
        assert response.status_code == 200, response.text
        numbered += [numbered[-1] + 1, numbered[-1] + 2]
        subject = response.json()["subject"]
        assert [p["n"] for p in subject["photos"]] == numbered
        assert [v["accepted"] for v in response.json()["added"]] == [True, False]
    assert (subject["photos_accepted"], subject["photos_refused"]) == (7, 4)


def test_only_accepted_photos_are_kept_sealed_with_the_subjects_own_key(screened, endpoints, object_store: ObjectStore):
    tenant, first, second = screened
    subject = second["subject"]
    stored = until(lambda: asyncio_keys(object_store, f"subjects/{tenant.id}/{subject['id']}/"), 10)
    accepted = {p["sha256"] for p in subject["photos"] if p["accepted"]}
    assert {key.rsplit("/", 1)[1] for key in stored} == accepted
    key = subject_key(endpoints, subject["id"])
    for object_key in stored:
        sealed = asyncio_get(object_store, object_key)
        with pytest.raises(Exception):  # noqa: B017 — sealed: not an image to anyone without the key
            Image.open(io.BytesIO(sealed)).load()
        clear = open_bytes(key, SubjectField(subject["id"], f"photo/{object_key.rsplit('/', 1)[1]}"), sealed=sealed)
        assert Image.open(io.BytesIO(clear)).size == (384, 384)
    listed = tenant.http.get("/v1/subjects").json()["data"]
    assert subject["id"] in [s["id"] for s in listed] and all(s["photos"] == [] for s in listed)


def test_another_tenants_subject_is_unknown(screened, tenant_factory, photos):
    _, first, _ = screened
    stranger = tenant_factory()
    for response in (stranger.http.get(f"/v1/subjects/{first['id']}"),
                     stranger.http.delete(f"/v1/subjects/{first['id']}"),
                     stranger.http.post(f"/v1/subjects/{first['id']}/photos", json={"photos": [b64(photos["pose0"])]})):
        assert response.status_code == 404 and response.json()["type"] == "/problems/subject-not-found", response.text
    order = stranger.http.post("/v1/jobs", json={"prompt": "a headshot", "template": "subject-headshots",
                                                  "subject": first["id"]})
    assert order.status_code == 422 and order.json()["type"] == "/problems/unknown-subject"


def test_an_order_of_a_subject_holds_its_training_line_and_releases_it_when_it_trains_nothing(screened, endpoints):
    tenant, first, _ = screened
    quote = tenant.http.post("/v1/quotes", json={"template": "subject-headshots", "images": 2,
                                                  "subject": first["id"]})
    assert quote.status_code == 200, quote.text
    assert (quote.json()["credits"], quote.json()["training_credits"]) == (50, 300)
    assert tenant.http.post("/v1/quotes", json={"template": "subject-headshots", "images": 2, "subject": first["id"],
                                                "identity": "reference"}).json()["training_credits"] == 0
    unknown_style = tenant.http.post("/v1/jobs", json={"prompt": "a headshot", "template": "subject-headshots",
                                                        "subject": first["id"], "styles": ["underwater"]})
    assert unknown_style.status_code == 422 and unknown_style.json()["type"] == "/problems/unknown-style"
    needs_subject = tenant.http.post("/v1/jobs", json={"prompt": "a headshot", "template": "subject-headshots"})
    assert needs_subject.json()["type"] == "/problems/subject-required"
    job_id = tenant.submit(prompt="a headshot", template="subject-headshots", subject=first["id"], images=2,
                           candidates=4, styles=["corporate", "casual"])
    job = tenant.wait_settled([job_id])[job_id]
    assert job["subject"]["id"] == first["id"] and job["subject"]["identity_asked"] == "auto"
    assert job["styles"] == ["corporate", "casual"]
    assert job["billing"]["training"] == {"state": "released", "reserved": 300, "charged": 0, "released": 300,
                                          "reason": "the job carries its subject by reference"}
    assert tenant.balance()["pending"] == 0
    receipt = tenant.http.get(f"/v1/jobs/{job_id}/receipt").json()["receipt"]
    assert receipt["subject"]["id"] == first["id"] and "photos" not in receipt["subject"]
    assert receipt["credits"]["training"] == {"reserved": 300, "charged": 0, "released": 300}
    with psycopg.connect(endpoints.database_url) as conn:
        ordered = conn.execute("SELECT last_ordered_at FROM ingest.subjects WHERE id = %s", [first["id"]]).fetchone()[0]
    assert ordered is not None
    lines: list[str] = []  # the receipt's training line is the ledger's, as its journal says
    assert replay_receipts(endpoints.operator_settings(IngestSettings), ReceiptReplay(tenant=tenant.id),
                           out=lines.append) == 0, lines


def test_a_subject_reaching_ready_is_announced_to_the_tenants_endpoints(tenant_factory, photos):
    tenant = tenant_factory()
    receiver = Receiver()
    receiver.thread.start()
    try:
        endpoint = create_endpoint(tenant, receiver.url("/subjects"), event_types=["subject.ready"])
        subject = ready_subject(tenant, photos)
        [request] = receiver.wait("/subjects", 1)
        assert verifies(endpoint["secret"], request)
        body = httpx.Response(200, content=request[1]).json()
        assert body["type"] == "subject.ready" and body["data"]["id"] == subject["id"]
        assert body["data"]["photos_accepted"] == 4 and "photos" not in body["data"]
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def test_an_erased_subject_leaves_nothing_readable(tenant_factory, photos, endpoints, platform, object_store):
    tenant = tenant_factory()
    subject = ready_subject(tenant, photos)
    prefix = f"subjects/{tenant.id}/{subject['id']}/"
    assert len(asyncio_keys(object_store, prefix)) == 4
    erased = tenant.http.delete(f"/v1/subjects/{subject['id']}")
    assert erased.status_code == 202 and erased.json() == {"id": subject["id"], "state": "erased"}
    assert tenant.http.get(f"/v1/subjects/{subject['id']}").status_code == 410
    assert tenant.http.delete(f"/v1/subjects/{subject['id']}").status_code == 410
    assert subject_key(endpoints, subject["id"]) is None
    assert asyncio_keys(object_store, prefix) == []
    with psycopg.connect(endpoints.database_url) as conn:
        left = conn.execute("SELECT name, centroid, (SELECT count(*) FROM ingest.subject_photos WHERE subject_id = s.id)"
                            " FROM ingest.subjects s WHERE id = %s", [subject["id"]]).fetchone()
    assert left == ("", None, 0)
    order = tenant.http.post("/v1/jobs", json={"prompt": "a headshot", "template": "subject-headshots",
                                                "subject": subject["id"]})
    assert order.json()["type"] == "/problems/unknown-subject"
    assert wait_for_audit(platform, tenant.id, "subject.erase")["target"] == f"subject:{subject['id']}"


def test_the_retention_erases_a_subject_nobody_ordered_unless_it_is_kept(tenant_factory, photos, platform, endpoints):
    tenant = tenant_factory()
    forgotten = ready_subject(tenant, photos)
    kept = create(tenant, keep=True, photos=[b64(photos[f"pose{i}"]) for i in range(4, 8)]).json()
    response = httpx.put(f"{platform.url('ingest')}/admin/v1/tenants/{tenant.id}/retention",
                         json={"subjects_days": 1}, headers={"Authorization": f"Bearer {LEDGER_ADMIN_TOKEN}"},
                         timeout=10)
    assert response.status_code == 200 and response.json()["subjects_days"] == 1
    assert tenant.http.get(f"/v1/subjects/{forgotten['id']}").json()["erase_after"] is not None
    assert kept["erase_after"] is None
    with psycopg.connect(endpoints.database_url) as conn:  # both made two days ago, never ordered
        conn.execute("UPDATE ingest.subjects SET created_at = created_at - interval '2 days' WHERE id = ANY(%s)",
                     [[forgotten["id"], kept["id"]]])
    until(lambda: tenant.http.get(f"/v1/subjects/{forgotten['id']}").status_code == 410, 30)
    assert tenant.http.get(f"/v1/subjects/{kept['id']}").json()["state"] == "ready"
    assert wait_for_audit(platform, tenant.id, "subject.erase")["details"] == {"reason": "retention"}


def asyncio_keys(store: ObjectStore, prefix: str) -> list[str]:
    return sorted(obj.key for obj in asyncio.run(store.list_objects(store.internal_bucket, prefix)))


def asyncio_get(store: ObjectStore, key: str) -> bytes:
    return asyncio.run(store.get(store.internal_bucket, key))


def as_router(endpoints, platform, events) -> None:
    """Publish events on the router's topic, as the router announces an order's identity."""
    topic = topic_of("router", platform.namespace or DEFAULT_NAMESPACE)
    asyncio.run(publish_envelopes(endpoints.kafka_bootstrap, [envelop(e, "/genline/router") for e in events],
                                  lambda _: topic))


def identity_events(job_id: str, tenant_id: str, subject: dict, fails: bool) -> list:
    now, subject_id, job = datetime.now(UTC), uuid.UUID(subject["id"]), uuid.UUID(job_id)
    use = IdentityUse(subject_id=subject_id, mode="lora", provider="local", model="local-trainer")
    planned = IdentityPlanned(job_id=job, tenant_id=tenant_id, use=use, trains=True, planned_at=now)
    if fails:
        return [planned, IdentityTrainingFailed(job_id=job, tenant_id=tenant_id, subject_id=subject_id,
                                                identity_id=uuid.uuid4(), failure_code="provider_error",
                                                reason="the trainer ran out of memory", failed_at=now)]
    return [planned, IdentityTrained(job_id=job, tenant_id=tenant_id, subject_id=subject_id, identity_id=uuid.uuid4(),
                                     photo_set_sha256=subject["photo_set_sha256"], provider="local",
                                     model="local-trainer", weights_key="identities/w", weights_sha256="e" * 64,
                                     weights_size_bytes=4096, trigger_word=subject["trigger_word"],
                                     cost_micro_usd=1000, trained_at=now)]


def test_the_routers_identity_events_move_a_subject_and_are_announced(tenant_factory, photos, endpoints, platform):
    tenant = tenant_factory()
    receiver = Receiver()
    receiver.thread.start()
    try:
        endpoint = create_endpoint(tenant, receiver.url("/identity"), event_types=["subject.trained", "subject.failed"])
        trained, failed = ready_subject(tenant, photos), ready_subject(tenant, photos)
        jobs = {s["id"]: tenant.submit(prompt="a headshot", template="subject-headshots", subject=s["id"], images=1,
                                       candidates=2) for s in (trained, failed)}
        tenant.wait_settled(list(jobs.values()))
        as_router(endpoints, platform, identity_events(jobs[trained["id"]], tenant.id, trained, fails=False)
                  + identity_events(jobs[failed["id"]], tenant.id, failed, fails=True))
        until(lambda: tenant.http.get(f"/v1/subjects/{trained['id']}").json()["state"] == "trained", 60)
        until(lambda: tenant.http.get(f"/v1/subjects/{failed['id']}").json()["state"] == "failed", 60)
        identity = tenant.http.get(f"/v1/subjects/{trained['id']}").json()["identity"]
        assert (identity["provider"], identity["weights_sha256"]) == ("local", "e" * 64)
        assert "the trainer ran out of memory" in tenant.http.get(f"/v1/subjects/{failed['id']}").json()["reason"]
        sent = receiver.wait("/identity", 2)
        assert all(verifies(endpoint["secret"], request) for request in sent)
        told = {httpx.Response(200, content=body).json()["type"] for _, body in sent}
        assert told == {"subject.trained", "subject.failed"}
        job = tenant.job(jobs[trained["id"]])
        assert job["subject"]["identity"]["weights_sha256"] == "e" * 64 and job["subject"]["training"] == "trained"
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
