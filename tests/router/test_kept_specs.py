"""A job's spec as the router keeps it (its `jobs` table, where every replica takes the job's
attempts from) is written for the release the events are written for: during a rolling update,
or after a rollback, a replica of the previous release reads the specs this release admitted.
Against a real PostgreSQL and the previous release's own contracts (its `contracts.py` at its
commit): what is kept for it, it reads; the same spec kept whole, it refuses (the check can fail)."""

import uuid

import pytest

from services.common.bus import EventWriter, HandlerContext, envelop
from services.common.contracts import JobSpec
from services.common.db import COMMON_MIGRATIONS, migrate, open_pool
from services.common.releases import PREVIOUS, RELEASE
from services.router import handlers, store
from services.router.store import QueuedAttempt
from tests.releases.records import contracts_of_tree, source_of
from tests.router.service import credits_reserved, job_spec


class Announcements:
    """The scheduler as the admission sees it: told of the attempt once the admission commits."""

    def __init__(self) -> None:
        self.announced: list[QueuedAttempt] = []

    def announce(self, request: QueuedAttempt) -> None:
        self.announced.append(request)


@pytest.fixture(scope="module")
def previous_contracts(tmp_path_factory):
    return contracts_of_tree(source_of(PREVIOUS, tmp_path_factory.mktemp("previous")), PREVIOUS.version)


@pytest.fixture
async def pool(endpoints):
    schema = f"router_specs_{uuid.uuid4().hex[:8]}"
    await migrate(endpoints.database_url, schema, packages=[COMMON_MIGRATIONS, "services.router"])
    pool = open_pool(endpoints.database_url, schema, size=2)
    await pool.open()
    yield pool
    await pool.close()


async def admitted_spec(pool, spec: JobSpec, *, readers: str) -> dict:
    """The spec row the router's admission keeps, its events written for `readers`'s release."""
    event, scheduler = credits_reserved(spec), Announcements()
    async with pool.connection() as conn, conn.transaction():
        ctx = HandlerContext(conn=conn, envelope=envelop(event, "ledger"), source="router",
                             writer=EventWriter(namespace="genline", readers=readers))
        await handlers.admit(ctx, event, scheduler=scheduler)
    for callback in ctx.committed:
        callback()
    assert [request.job_id for request in scheduler.announced] == [spec.job_id]
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT spec FROM jobs WHERE job_id = %s", [spec.job_id])).fetchone()
    return row["spec"]


async def test_a_spec_kept_for_the_previous_release_is_read_by_it_and_by_this_one(pool, previous_contracts):
    spec = job_spec(images=2, candidates=4)
    kept = await admitted_spec(pool, spec, readers=PREVIOUS.version)
    assert previous_contracts.JobSpec.model_validate(kept).job_id == spec.job_id
    assert JobSpec.model_validate(kept) == spec  # nothing the job set was left out
    async with pool.connection() as conn:
        claimed = await store.claim_job_attempt(conn, QueuedAttempt(job_id=spec.job_id, attempt=1, images_needed=2,
                                                                    tier=spec.tier, tenant_id=spec.tenant_id),
                                                lease=store.Lease(owner="router-test", lease_s=30))
    assert claimed is not None and claimed.claimed().job.spec == spec


async def test_the_same_spec_kept_whole_is_refused_by_the_previous_release(pool, previous_contracts):
    kept = await admitted_spec(pool, job_spec(), readers=RELEASE)
    assert "output_format" in kept
    with pytest.raises(ValueError, match="output_format"):
        previous_contracts.JobSpec.model_validate(kept)
