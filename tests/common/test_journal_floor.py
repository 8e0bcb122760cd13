"""The journal's floor against a real PostgreSQL and a broker of each test's own: it rises past
what every reader group read and never past a running transaction; an inbox forgets below it,
only on topics whose journals count its group among their readers, and a rebuild never
publishes what an inbox forgot."""

import asyncio
import uuid
from datetime import datetime

import psycopg
import pytest

from services.common import telemetry
from services.common.bus import journal as journal_module
from services.common.bus.rebuild import BusSettings, Journals, rebuild
from services.common.contracts import ReservationRejected, topic_of
from services.common.runtime import ServiceRuntime
from tests.common.journal_rig import (
    PUBLISHED,
    Ledger,
    Reader,
    ledger_on,
    rows_of,
    rows_until,
)
from tests.conftest import settings_for

pytestmark = pytest.mark.processes  # starts the platform's processes or the stack's servers again


async def created_at(ledger: Ledger, amounts: list[int]) -> list:
    """When each amount's row was written, in the order of `amounts` (the rows come back in the
    table's order, which a row's update to published may have changed)."""
    rows = await ledger.rows(
        "SELECT (convert_from(body, 'UTF8')::jsonb ->> 'required')::int AS amount, created_at FROM outbox"
        " WHERE (convert_from(body, 'UTF8')::jsonb ->> 'required')::int = ANY(%s)", amounts)
    written = {row["amount"]: row["created_at"] for row in rows}
    assert len(rows) == len(amounts) and set(written) == set(amounts)
    return [written[amount] for amount in amounts]


async def floor_after(ledger: Ledger, looks: int = 2):
    """The floor after `looks` of the journal's own look at its readers (the first may only take
    the checkpoint that the next raises the floor to)."""
    journal = ledger.runtime.journal
    for _ in range(looks):
        await journal.observe(ledger.runtime.relay._producer.client)
        await journal.advance_floor()
    return await journal.floor()


async def floor_past(ledger: Ledger, amounts: list[int], timeout_s: float = 60) -> datetime:
    """The floor once it has risen past the rows of `amounts`: a transaction of another test's
    services on the same database may hold it back a while, as it should."""
    newest = max(await created_at(ledger, amounts))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (floor := await floor_after(ledger, looks=1)) is None or floor <= newest:
        assert asyncio.get_running_loop().time() < deadline, f"the floor stayed at {floor}, below {newest}"
        await asyncio.sleep(0.1)
    return floor


@pytest.fixture
def no_margin(monkeypatch):
    """Checkpoints as late as the database allows: the test's rows are seconds old."""
    monkeypatch.setattr(journal_module, "FLOOR_MARGIN_S", 0.0)


async def test_the_floor_rises_past_what_every_group_read_and_never_past_a_running_transaction(
        endpoints, broker, no_margin):
    async with ledger_on(endpoints, broker, bus_republish_window_s=0, bus_check_interval_s=3600) as ledger:
        ingest = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("ingest"))
        router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
        empty = await floor_after(ledger)  # nothing published: nothing any group has to read
        await ledger.grant(10)
        await ledger.until(PUBLISHED, 10)
        await asyncio.gather(ingest.read(set(range(10))), router.read(set(range(10))))
        first_ten = await floor_past(ledger, list(range(10)))

        # A transaction that began before the next rows (it may yet write rows created then)
        # holds the floor back until it ends, though every group reads those rows.
        async with await psycopg.AsyncConnection.connect(endpoints.database_url) as other:
            await other.execute("BEGIN")
            await other.execute("SELECT 1")
            began = (await (await other.execute("SELECT now() AS t")).fetchone())[0]
            await ledger.grant(5)
            await ledger.until(PUBLISHED, 15)
            await asyncio.gather(ingest.read(set(range(15))), router.read(set(range(15))))
            held = await floor_after(ledger, looks=3)
            await other.execute("ROLLBACK")
        released = await floor_past(ledger, list(range(15)))

        # A group that lags holds it below what that group has not read.
        await ingest.leave()
        await ledger.grant(5)
        await ledger.until(PUBLISHED, 20)
        await router.read(set(range(20)))
        lagging = await floor_after(ledger, looks=3)
        await router.leave()
        created = dict(zip(range(20), await created_at(ledger, list(range(20))), strict=True))
    assert empty is not None and empty < min(created.values())
    assert first_ten > max(created[a] for a in range(10))
    assert first_ten <= held <= began < min(created[a] for a in range(10, 15))
    assert released > max(created[a] for a in range(15))
    assert released <= lagging < min(created[a] for a in range(15, 20))


async def test_an_inbox_forgets_below_the_floor_and_a_rebuild_never_publishes_what_it_forgot(
        endpoints, broker, no_margin):
    async with ledger_on(endpoints, broker, bus_republish_window_s=0) as ledger:
        ingest = ServiceRuntime("ingest", settings_for(
            endpoints, kafka_bootstrap=broker.bootstrap, topic_namespace=ledger.namespace,
            schema_name=f"{ledger.namespace}_ingest", kafka_commit_interval_ms=100), migrations_package=None)

        @ingest.consumer.on(ReservationRejected)
        async def note(ctx, event):
            await ctx.conn.execute("INSERT INTO effects VALUES (%s)", [event.required])

        ingest.consume_topics(["ledger"])
        await ingest.start()
        try:
            async with ingest.pool.connection() as conn:
                await conn.execute("CREATE TABLE effects (amount int)")
            router = await Reader.join(broker.bootstrap, ledger.topic, ledger.group("router"))
            await ledger.grant(10)
            await router.read(set(range(10)))
            await rows_until(ingest, "SELECT 1 FROM effects HAVING count(*) >= 10")
            ten = max(await created_at(ledger, list(range(10))))
            deadline = asyncio.get_running_loop().time() + 60
            while (floor := await floor_after(ledger, looks=1)) is None or floor <= ten:
                assert asyncio.get_running_loop().time() < deadline, "the floor never passed what both groups read"
                await asyncio.sleep(0.2)
            await router.leave()  # the router's group reads no further: the floor stays below what comes next
            await ledger.grant(1)  # it carries the floor to the ingest group's inbox
            await rows_until(ingest, "SELECT 1 FROM effects HAVING count(*) >= 11")
            forgotten = await ingest.consumer.inbox_floors.prune_inbox()
            kept = await rows_of(ingest, "SELECT count(*) AS n FROM inbox")

            duplicates = telemetry.EVENTS_CONSUMED.labels(ingest.name, ReservationRejected.event_type, "duplicate")
            skipped = duplicates._value.get()
            lines: list[str] = []
            settings = BusSettings(database_url=endpoints.database_url, kafka_bootstrap=broker.bootstrap,
                                   topic_namespace=ledger.namespace)
            await rebuild(Journals(settings, f"{ledger.namespace}_"), everything=True, out=lines.append)
            deadline = asyncio.get_running_loop().time() + 60
            while duplicates._value.get() < skipped + 1:  # the one row above the floor, skipped
                assert asyncio.get_running_loop().time() < deadline, "the row above the floor never came again"
                await asyncio.sleep(0.1)
            await ledger.grant(1)  # and what comes next is applied as usual
            await rows_until(ingest, "SELECT 1 FROM effects HAVING count(*) >= 12")
            effects = await rows_of(ingest, "SELECT amount FROM effects ORDER BY amount")
        finally:
            await ingest.stop()
    assert ingest.consumer.inbox_floors.topics == {ledger.topic}
    assert forgotten == 10 and kept[0]["n"] == 1
    assert f"ledger: 1 rows to publish again on {ledger.topic}" in lines
    assert [row["amount"] for row in effects] == list(range(12))  # each once


def test_an_inbox_forgets_only_on_topics_whose_journals_count_its_group_among_their_readers(endpoints):
    """A floor says every reader group the producer's contract names has read below it; a
    consumer outside that list (another name, a topic it is not a contract reader of) keeps
    every event it applied."""
    namespace = f"f{uuid.uuid4().hex[:8]}"
    runtimes = {name: ServiceRuntime(name, settings_for(endpoints, topic_namespace=namespace,
                                                        schema_name=f"{namespace}_{name}"), migrations_package=None)
                for name in ("router", "audit_copy")}
    runtimes["router"].consume_topics(["ledger", "scorer", "delivery"])  # not a contract reader of delivery
    runtimes["audit_copy"].consume_topics(["ledger"])
    assert runtimes["router"].consumer.inbox_floors.topics == {topic_of("ledger", namespace), topic_of("scorer", namespace)}
    assert runtimes["audit_copy"].consumer.inbox_floors.topics == set()
