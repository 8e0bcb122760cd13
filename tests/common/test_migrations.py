"""Migrations: each number used once per service, a renumbered migration not applied again
where it was applied under its former name, and a migration that cannot have its lock soon
giving up rather than holding up every writer queued behind it."""

import uuid

import psycopg
import pytest

from services.common.db import COMMON_MIGRATIONS, MigrationNumberTaken, migrate, migration_files

SERVICES = ["services.ingest", "services.ledger", "services.router", "services.scorer", "services.delivery"]


@pytest.mark.parametrize("package", [COMMON_MIGRATIONS, *SERVICES])
def test_each_migration_number_is_used_once(package):
    numbers = [version.split("_", 1)[0] for version, _ in migration_files(package)]
    assert len(numbers) == len(set(numbers)), numbers


def test_a_number_used_twice_is_refused(tmp_path, monkeypatch):
    package = tmp_path / "twice"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("0001_a.sql", "0002_b.sql", "0002_c.sql"):
        (package / "migrations" / name).write_text("SELECT 1;")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MigrationNumberTaken, match="0002"):
        migration_files("twice")


async def test_a_database_migrated_before_the_renumbering_applies_nothing_again(endpoints):
    """The renamed files' former names stand in schema_migrations, as on a database that
    applied them before: a start records their new names and runs none of them."""
    schema = f"renumbered_{uuid.uuid4().hex[:8]}"
    packages = [COMMON_MIGRATIONS, "services.ingest"]
    await migrate(endpoints.database_url, schema, packages=packages)
    async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        renamed = [(version, sql.split("\n", 1)[0].removeprefix("-- formerly: "))
                   for version, sql in migration_files("services.ingest") if sql.startswith("-- formerly: ")]
        assert ("0005_job_erasure", "0004_job_erasure") in renamed
        for version, former in renamed:
            await conn.execute("UPDATE schema_migrations SET version = %s WHERE version = %s",
                               [f"services.ingest:{former}", f"services.ingest:{version}"])
        # Were any of them run again, its CREATE TABLE would fail on the table it made before.
        assert await migrate(endpoints.database_url, schema, packages=packages) == [
            f"services.ingest:{version}" for version, _ in renamed]
        assert await migrate(endpoints.database_url, schema, packages=packages) == []
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_a_migration_that_cannot_take_its_lock_gives_up_and_leaves_writers_be(endpoints, tmp_path, monkeypatch):
    """A reader holds the table in a long transaction: the ALTER TABLE queued behind it would
    hold up every writer queued behind the ALTER; it gives up after its lock timeout instead,
    unrecorded, and is applied at the next start once the reader is done."""
    package = tmp_path / "locked"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "migrations" / "0001_table.sql").write_text("CREATE TABLE busy (n int);")
    (package / "migrations" / "0002_column.sql").write_text("ALTER TABLE busy ADD COLUMN m int;")
    monkeypatch.syspath_prepend(str(tmp_path))
    schema = f"locked_{uuid.uuid4().hex[:8]}"
    (package / "migrations" / "0002_column.sql").rename(tmp_path / "0002_column.sql")
    assert await migrate(endpoints.database_url, schema, packages=["locked"]) == ["locked:0001_table"]
    (tmp_path / "0002_column.sql").rename(package / "migrations" / "0002_column.sql")
    async with await psycopg.AsyncConnection.connect(endpoints.database_url) as reader:
        await reader.execute(f'SELECT count(*) FROM "{schema}".busy')  # its transaction stays open
        with pytest.raises(psycopg.errors.LockNotAvailable):
            await migrate(endpoints.database_url, schema, packages=["locked"], lock_timeout_s=0.5)
        async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as writer:
            await writer.execute(f'INSERT INTO "{schema}".busy VALUES (1)')  # not held up by a queued ALTER
        await reader.rollback()
    assert await migrate(endpoints.database_url, schema, packages=["locked"]) == ["locked:0002_column"]
    async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
