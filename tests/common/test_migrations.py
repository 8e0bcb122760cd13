"""Migrations: each number used once per service, and a renumbered migration not applied
again where it was applied under its former name."""

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
