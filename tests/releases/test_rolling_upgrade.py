"""A rolling upgrade from the previous release to this one, and back, on the real stack under a
steady stream of jobs (DESIGN.md §15, docs/guides/kubernetes.md "Upgrades and rollbacks").

The previous release (its commit, installed into a virtual environment of its own from its own
lock files, tests/releases/installed.py) serves the platform: a small job every 1.5 s, a 60-from
-240 order, a subject's headshot order (its identity trained), a batch, and every job's final
webhook to the tenant's endpoint. Then each service is replaced one replica at a time by this
release, as `maxSurge: 1, maxUnavailable: 0` does (the new pod ready before the old one is
stopped; ingest's address moves with it), and rolled back the same way, while jobs keep arriving.
Every job ends, succeeded; each is charged once, and the account holds exactly the grant less
the charges; no event reaches a dead-letter topic and none is held as unknown; the ledger's
replays from its journal and its topic and the jobs' replay agree with the live state; the
client saw no error besides the retries the API documents; both releases wrote events.

Then the migration check: every statement the previous release's services sent while they
served, prepared again on a schema it migrated and this release then migrated further
(tests/releases/statements.py); and the same check fails on a planted migration that drops a
column the previous release reads.

`pytest tests/releases --upgrade-plant=PLANT` runs the upgrade with an incompatibility planted,
and the upgrade test fails: `dropped-column` (this release's expand step drops a column the
previous release reads), `events-whole` (this release writes its events whole while the previous
release's consumers still read them), `new-event-type` (an event of a type the previous release
does not know reaches its consumers).
"""

import asyncio
import base64
import json
import os
import shutil
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from genline_stack.demo_subject import demo_photos
from genline_stack.embedded import Endpoints, create_topics
from genline_stack.fleet import CHECKOUT, SERVICES, Build, ServiceFleet, service_of
from services.common.bus import EventWriter, read_topic_to_end
from services.common.bus.envelope import envelop
from services.common.bus.outbox import outbox_row
from services.common.contracts import EVENT_TYPES, JobEvent, all_topics, dead_letter_topic, topic_of
from services.common.releases import PREVIOUS, RELEASE
from services.ingest.jobs.replay import JobReplay, replay_jobs
from services.ingest.settings import IngestSettings
from services.ledger.replay import LedgerReplay, replay_ledger
from services.ledger.settings import LedgerSettings
from tests.e2e.test_docs_examples import steady_registry
from tests.releases.installed import installed
from tests.releases.rollout import Client, JobStream, Receiver, percentile
from tests.releases.statements import STATEMENT_LOG, check_migrations, recorded

# It replaces the processes of a fleet of its own under load: with the other tests that do (own_stack).
pytestmark = [pytest.mark.processes, pytest.mark.own_stack]

ADMIN_TOKEN = "upgrade-admin-token-5b1c9e7d"
CREDITS = 100_000
# Replaced in this order, and rolled back in the reverse one: the consumers first, the public
# API last (the order a careful operator picks; any order holds while events are written for the
# previous release).
UPGRADE_ORDER = SERVICES
# How long each quiet stretch lasts (seconds): before the upgrade, between it and the rollback,
# after the rollback; each is a phase of its own in the figures.
STEADY_S, BETWEEN_S, AFTER_S = 20, 10, 10
STREAM_EVERY_S = 1.5
# The baseline (`--upgrade-baseline`): the same stream and orders on the previous release for as
# long, each replacement a wait of about as long as one takes here (a start and a drain).
BASELINE_STEP_S = 18
DEAD_LETTERS_EVERY_S = 15
# A column the previous release's ledger writes on every reservation, dropped by a migration in
# the expand step: what the planted failures drop.
PLANTED_MIGRATION = ("ledger", "ALTER TABLE transfers DROP COLUMN timeout_at")


@dataclass(frozen=True, kw_only=True)
class Rollout:
    fleet: ServiceFleet
    previous: Build
    this: Build
    namespace: str
    statements: Path
    folder: Path
    plant: str | None
    baseline: bool


def registry_file(shipped: Path, path: Path) -> str:
    path.write_text(yaml.safe_dump(steady_registry(shipped)))
    return str(path)


def planted_tree(folder: Path) -> Path:
    """This checkout's code with the planted migration added to its service's migrations."""
    root = folder / "planted"
    for part in ("services", "genline_stack"):
        shutil.copytree(CHECKOUT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    service, sql = PLANTED_MIGRATION
    (root / "services" / service / "migrations" / "9999_planted_drop.sql").write_text(sql + ";\n")
    return root


def builds(previous: Build, folder: Path, plant: str | None) -> tuple[Build, Build]:
    """The previous release as its pods run it (its own provider registry; its statements
    recorded), and this release as a rolling update brings it in: writing its events for the
    previous release's consumers (whole, where that is the plant)."""
    statements = folder / "statements"
    statements.mkdir()
    old = Build(python=previous.python, root=previous.root, env={
        "PYTHONPATH": os.pathsep.join([str(previous.root), str(STATEMENT_LOG)]),
        "GENLINE_TEST_STATEMENTS_DIR": str(statements),
        "GENLINE_PROVIDERS_PATH": registry_file(previous.root / "services/router/providers.yaml",
                                                folder / "providers-previous.yaml")})
    new = Build(root=planted_tree(folder) if plant == "dropped-column" else CHECKOUT, env={
        "GENLINE_EVENTS_COMPATIBLE_WITH": RELEASE if plant == "events-whole" else PREVIOUS.version,
        "GENLINE_PROVIDERS_PATH": registry_file(CHECKOUT / "services/router/providers.yaml",
                                                folder / "providers-this.yaml")})
    return old, new


@pytest.fixture(scope="module")
def rollout(endpoints: Endpoints, tmp_path_factory, request):
    plant = request.config.getoption("--upgrade-plant", default=None)
    baseline = request.config.getoption("--upgrade-baseline", default=False)
    folder = tmp_path_factory.mktemp("upgrade")
    old, new = builds(installed(PREVIOUS), folder, plant)
    namespace = f"upgrade{uuid.uuid4().hex[:6]}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    fleet = ServiceFleet(endpoints=endpoints, log_dir=folder / "logs", namespace=namespace, fronted=True, extra_env={
        "GENLINE_ENVIRONMENT": "test", "GENLINE_KAFKA_SESSION_TIMEOUT_MS": "6000", "GENLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "GENLINE_WEBHOOK_RETRY_SCHEDULE_S": "[0.3, 0.6, 1.2, 2.4]"})
    try:
        for name in SERVICES:
            fleet.start(name, old)
        for name in SERVICES:
            fleet.wait_ready(name)
        yield Rollout(fleet=fleet, previous=old, this=new, namespace=namespace, statements=folder / "statements",
                      folder=folder, plant=plant, baseline=baseline)
    finally:
        fleet.stop_all()


# ---- the tenant and its work ------------------------------------------------------------


def tenant_of(fleet: ServiceFleet) -> tuple[str, str]:
    """A tenant made and granted its credits as an operator does, through the admin APIs of the
    release that runs: its id and API key."""
    tenant_id, admin = f"t-{uuid.uuid4().hex[:10]}", {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    made = httpx.post(f"{fleet.admin_url('ingest')}/admin/v1/tenants", headers=admin, timeout=30,
                      json={"id": tenant_id, "plan": "enterprise"})
    assert made.status_code == 201, made.text
    granted = httpx.post(f"{fleet.admin_url('ledger')}/admin/v1/grants", headers=admin, timeout=30,
                         json={"tenant_id": tenant_id, "credits": CREDITS})
    assert granted.status_code in (200, 201), granted.text
    return tenant_id, made.json()["api_key"]


def subject_order(client: Client) -> str:
    """The demo's subject (eight photos of one person, a ninth of someone else refused), then an
    order of six headshots across its styles with its identity trained: the job's id. Four
    candidates a picture, as the cost test asks: with two, a style whose passing pictures were
    all alike shipped the order one picture short (partially_succeeded, the scorer's rule, not
    the upgrade's doing) in one full run."""
    photos = [base64.b64encode(photo).decode() for photo in demo_photos()]
    subject = client.call("POST", "/v1/subjects", json={"kind": "person", "name": "upgrade", "photos": photos}).json()
    return client.call("POST", "/v1/jobs", json={
        "prompt": "professional headshot", "template": "subject-headshots", "subject": subject["id"],
        "identity": "lora", "images": 6, "candidates": 24}).json()["id"]


BATCH_LINES = 3


def batch(client: Client) -> str:
    lines = [{"custom_id": f"sku-{n}", "method": "POST", "url": "/v1/images/generations",
              "body": {"model": "gpt-image-1", "prompt": "a ceramic mug", "size": "64x64", "response_format": "url"}}
             for n in range(BATCH_LINES)]
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    uploaded = client.call("POST", "/v1/files", data={"purpose": "batch"},
                           files={"file": ("mugs.jsonl", content, "application/jsonl")}).json()
    return client.call("POST", "/v1/batches", json={"input_file_id": uploaded["id"], "completion_window": "24h",
                                                     "endpoint": "/v1/images/generations"}).json()["id"]


# ---- the rollout ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Replacement:
    service: str
    release: str
    at_s: float


def roll(rollout: Rollout, order: tuple[str, ...], build: Build, *, began: float,
         plant_after_first: bool = False) -> list[Replacement]:
    """Each service's one process replaced by one of `build`, in `order` (ServiceFleet.replace);
    for the baseline, nothing replaced and as long waited instead."""
    done, fleet = [], rollout.fleet
    for service in order:
        [process] = [p for p in fleet.processes if service_of(p) == service]
        if rollout.baseline:
            time.sleep(BASELINE_STEP_S)
        else:
            fleet.replace(process, build)
        release = "none (baseline)" if rollout.baseline else RELEASE if build is rollout.this else PREVIOUS.version
        done.append(Replacement(service=service, release=release, at_s=round(time.monotonic() - began, 1)))
        if plant_after_first:
            plant_unknown_event(rollout)
            plant_after_first = False
    return done


def plant_unknown_event(rollout: Rollout) -> None:
    """The plant `new-event-type`: an event of a type the previous release has never heard of,
    written whole into the ledger's outbox as a release that writes it would, for its relay to
    publish. The type is known here only while the row is made (every contract defined is
    known to every consumer that starts in this process)."""

    class JobNoted(JobEvent):
        event_type = "genline.job.noted.v1"
        publisher = "ledger"

    try:
        event = JobNoted(job_id=uuid.uuid4(), tenant_id="t-planted")
        row = outbox_row(envelop(event, "/genline/ledger"), EventWriter(namespace=rollout.namespace))
    finally:
        EVENT_TYPES.pop(JobNoted.event_type, None)
    with psycopg.connect(rollout.fleet.endpoints.database_url, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{rollout.fleet.schema("ledger")}".outbox'
                     " (event_id, event_type, topic, record_key, headers, body) VALUES (%s, %s, %s, %s, %s, %s)",
                     row.values)  # the outbox's trigger wakes the relay


# ---- what the platform shows afterwards -------------------------------------------------------


def dead_letters(rollout: Rollout) -> dict[str, int]:
    topics = [dead_letter_topic(topic_of(service, rollout.namespace)) for service in SERVICES]
    bootstrap = rollout.fleet.endpoints.kafka_bootstrap
    return {topic: n for topic in topics if (n := len(asyncio.run(read_topic_to_end(bootstrap, topic))))}


def producers(rollout: Rollout) -> Counter[str]:
    """Events on the platform's topics by the release that wrote them (none said before 0.2.0)."""
    bootstrap, counted = rollout.fleet.endpoints.kafka_bootstrap, Counter[str]()
    for service in SERVICES:
        for record in asyncio.run(read_topic_to_end(bootstrap, topic_of(service, rollout.namespace))):
            version = dict(record.headers or ()).get("ce_producerversion")
            counted[version.decode() if version else PREVIOUS.version] += 1
    return counted


def held(rollout: Rollout) -> int:
    """Events held as unknown, in every schema that has the table (none, where 0.2.0 never ran)."""
    with psycopg.connect(rollout.fleet.endpoints.database_url) as conn:
        tables = [f'"{rollout.fleet.schema(s)}".events_held' for s in SERVICES]
        return sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables
                   if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()[0])


def balance(rollout: Rollout, tenant_id: str) -> tuple[int, int]:
    with psycopg.connect(rollout.fleet.endpoints.database_url) as conn:
        return conn.execute(f'SELECT posted, pending FROM "{rollout.fleet.schema("ledger")}".accounts'
                            " WHERE tenant_id = %s", [tenant_id]).fetchone()


def replays(rollout: Rollout, tenant_id: str) -> dict[str, tuple[int, list[str]]]:
    endpoints, fleet, found = rollout.fleet.endpoints, rollout.fleet, {}
    ledger = endpoints.operator_settings(LedgerSettings, topic_namespace=rollout.namespace)
    for source in ("journal", "topics"):
        lines: list[str] = []
        found[f"ledger/{source}"] = (replay_ledger(ledger, LedgerReplay(schema=fleet.schema("ledger"), source=source),
                                                   out=lines.append), lines)
    lines = []
    ingest = endpoints.operator_settings(IngestSettings, topic_namespace=rollout.namespace)
    found["jobs/journal"] = (replay_jobs(ingest, JobReplay(schema=fleet.schema("ingest"), tenant=tenant_id, settle_s=30),
                                         out=lines.append), lines)
    return found


def wait_until(check, *, timeout_s: float, what, rollout: Rollout):
    """`check()` once it holds; a failure (saying `what()`) when it has not after `timeout_s`,
    or as soon as an event reaches a dead-letter topic (what nothing may do: the jobs behind it
    would only wait out the time)."""
    deadline, looked = time.monotonic() + timeout_s, time.monotonic()
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what()} after {timeout_s}s"
        if time.monotonic() - looked > DEAD_LETTERS_EVERY_S:
            assert dead_letters(rollout) == {}, f"{what()}, and events reached dead-letter topics"
            looked = time.monotonic()
        time.sleep(1)
    return found


def releases_serving(fleet: ServiceFleet) -> dict[str, tuple[str | None, str | None]]:
    """What each service's process says in its /healthz: its release and the release it writes
    its events for (a 0.1.0 process says neither)."""
    said = {service_of(p): httpx.get(f"{fleet.url(p)}/healthz", timeout=10).json() for p in fleet.processes}
    return {service: (health.get("version"), health.get("events_compatible_with")) for service, health in said.items()}


def slowest(stream: JobStream, receiver: Receiver, *, count: int = 3) -> list[dict[str, object]]:
    """The jobs of the stream that took longest to their final webhook, with their phase."""
    took = sorted(((receiver.finals[job.job_id][1] - job.at, job) for job in stream.jobs), key=lambda t: -t[0])
    return [{"job": job.job_id, "phase": job.phase, "s": round(seconds, 2)} for seconds, job in took[:count]]


def latencies(stream: JobStream, receiver: Receiver) -> dict[str, dict[str, float]]:
    """Per phase: jobs, and seconds from submission to the final webhook (p50, p99, most)."""
    by_phase: dict[str, list[float]] = {}
    for job in stream.jobs:
        by_phase.setdefault(job.phase, []).append(receiver.finals[job.job_id][1] - job.at)
    return {phase: {"jobs": len(seconds), "p50_s": round(percentile(seconds, 0.5), 2),
                    "p99_s": round(percentile(seconds, 0.99), 2), "max_s": round(max(seconds), 2)}
            for phase, seconds in by_phase.items()}


@pytest.mark.timeout(1200)  # ten replacements, each a process's start and drain, and the jobs' ends
def test_a_rolling_upgrade_and_back_under_load_loses_strands_and_double_charges_nothing(rollout: Rollout):
    began, fleet = time.monotonic(), rollout.fleet
    tenant_id, api_key = tenant_of(fleet)
    client, receiver = Client(base_url=fleet.ingest_url, api_key=api_key), Receiver()
    receiver.secret = client.call("POST", "/v1/webhook-endpoints", json={"url": receiver.url}).json()["secret"]
    stream = JobStream(client, every_s=STREAM_EVERY_S)
    stream.start()
    try:
        large = client.call("POST", "/v1/jobs", json={"prompt": "a lamp on a desk", "images": 60, "candidates": 240,
                                                      "seed": 60}).json()["id"]
        subject_job, batch_id = subject_order(client), batch(client)
        time.sleep(STEADY_S)
        stream.phase = "upgrade"
        replaced = roll(rollout, UPGRADE_ORDER, rollout.this, began=began,
                        plant_after_first=rollout.plant == "new-event-type")
        stream.phase = "upgraded"
        serving = {"upgraded": releases_serving(fleet)}
        time.sleep(BETWEEN_S)
        stream.phase = "rollback"
        replaced += roll(rollout, tuple(reversed(UPGRADE_ORDER)), rollout.previous, began=began)
        stream.phase = "rolled back"
        serving["rolled back"] = releases_serving(fleet)
        time.sleep(AFTER_S)
    finally:
        stream.stop()

    ended = [job.job_id for job in stream.jobs] + [large, subject_job]
    wait_until(lambda: all(job in receiver.finals for job in ended), timeout_s=600, rollout=rollout,
               what=lambda: f"jobs without a final webhook: {[j for j in ended if j not in receiver.finals][:10]}")
    batch_ended = wait_until(lambda: (b := client.call("GET", f"/v1/batches/{batch_id}").json())["status"]
                             in ("completed", "failed", "expired", "cancelled") and b, timeout_s=300,
                             what=lambda: "the batch has not ended", rollout=rollout)
    batch_jobs = [line["response"]["body"]["job_id"] for line in map(json.loads, client.call(
        "GET", f"/v1/files/{batch_ended['output_file_id']}/content").text.splitlines())]
    views = {job: client.call("GET", f"/v1/jobs/{job}").json() for job in ended + batch_jobs}
    figures = {"order": [r.__dict__ for r in replaced], "latency": latencies(stream, receiver),
               "slowest": slowest(stream, receiver),
               "retries": client.retries, "producers": dict(producers(rollout)), "wall_s": round(time.monotonic() - began)}
    (rollout.folder / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"\nrolling upgrade {PREVIOUS.version} -> {RELEASE} -> {PREVIOUS.version}: {json.dumps(figures)}")

    assert client.errors == [], client.errors
    assert {job: view["state"] for job, view in views.items() if view["state"] != "succeeded"} == {}
    assert len(views[large]["outputs"]) == 60 and len(views[subject_job]["outputs"]) == 6
    assert batch_ended["status"] == "completed" and batch_ended["request_counts"]["completed"] == BATCH_LINES
    assert all(view["billing"]["state"] == "settled" for view in views.values())
    assert receiver.unverified == [] and all(len(receiver.deliveries[job]) == 1 for job in ended)
    charged = sum(view["billing"]["charged"] + ((view["billing"].get("training") or {}).get("charged") or 0)
                  for view in views.values())
    assert balance(rollout, tenant_id) == (CREDITS - charged, 0)
    assert dead_letters(rollout) == {}
    assert held(rollout) == 0
    found = replays(rollout, tenant_id)
    assert {name: code for name, (code, _) in found.items() if code} == {}, found
    if not rollout.baseline:
        assert set(figures["producers"]) == {PREVIOUS.version, RELEASE}
        assert serving == {"upgraded": dict.fromkeys(SERVICES, (RELEASE, PREVIOUS.version)),
                           "rolled back": dict.fromkeys(SERVICES, (None, None))}


def test_the_previous_releases_statements_prepare_on_the_schema_this_release_migrated(rollout: Rollout):
    statements = recorded(rollout.statements)
    check = asyncio.run(check_migrations(rollout.previous, rollout.fleet.endpoints.database_url,
                                         prefix=f"check{uuid.uuid4().hex[:6]}", statements=statements))
    print(f"\nmigration check: {len(statements)} statements recorded from {PREVIOUS.version}'s services,"
          f" {check.checked} of them prepared on its schema and prepared again on {RELEASE}'s")
    assert {s.service for s in statements} == set(SERVICES) and check.checked > 100
    assert {s.query: why for s, why in check.broken.items()} == {}


def test_the_migration_check_fails_on_a_planted_migration_that_drops_a_column_the_previous_release_reads(rollout):
    service, sql = PLANTED_MIGRATION
    check = asyncio.run(check_migrations(rollout.previous, rollout.fleet.endpoints.database_url,
                                         prefix=f"plant{uuid.uuid4().hex[:6]}", statements=recorded(rollout.statements),
                                         planted={service: sql}))
    assert check.broken, "the planted migration broke nothing the check saw"
    assert {s.service for s in check.broken} == {service}
    assert all("timeout_at" in why for why in check.broken.values()), check.broken
