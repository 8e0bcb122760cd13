"""Least privilege in PostgreSQL: each service connects as a role of its own, with its own
password, owns the schema it migrates, and can read or write no other service's tables (the
router cannot read ingest's data keys, nor the ledger's accounts)."""

import uuid
from pathlib import Path

import psycopg
import pytest

from genline_stack.credentials import SERVICES, read_credentials, role_of, url_as
from genline_stack.embedded import Endpoints
from services.common.db import COMMON_MIGRATIONS, migrate

# One table each service owns, to be read by every other.
OWN_TABLE = {"ingest": "data_keys", "ledger": "accounts", "router": "attempt_requests", "scorer": "scores",
             "delivery": "delivered_images"}


def role_url(endpoints: Endpoints, service: str) -> str:
    return read_credentials(Path(endpoints.credentials_dir), service).database_url(endpoints.database_url)


@pytest.fixture(scope="module")
async def schemas(endpoints) -> dict[str, str]:
    """Each service's schema in a namespace of this module's, migrated as the service's role."""
    namespace = f"roles{uuid.uuid4().hex[:6]}"
    made = {}
    for service in SERVICES:
        made[service] = f"{namespace}_{service}"
        await migrate(role_url(endpoints, service), made[service], [COMMON_MIGRATIONS, f"services.{service}"])
    return made


@pytest.mark.parametrize("reader", SERVICES)
def test_a_role_reads_its_own_schema_and_no_other(endpoints, schemas, reader):
    with psycopg.connect(role_url(endpoints, reader), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == role_of(reader)
        for owner, schema in schemas.items():
            query = f'SELECT count(*) FROM "{schema}".{OWN_TABLE[owner]}'
            if owner == reader:
                assert conn.execute(query).fetchone()[0] >= 0
                continue
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(query)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'CREATE TABLE "{schema}".planted (x int)')


def test_the_routers_role_cannot_read_data_keys_or_any_ledger_table(endpoints, schemas):
    with psycopg.connect(endpoints.database_url, autocommit=True) as admin:
        ledger_tables = [row[0] for row in admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schemas["ledger"]]).fetchall()]
    assert "accounts" in ledger_tables and "entries" in ledger_tables
    with psycopg.connect(role_url(endpoints, "router"), autocommit=True) as conn:
        for table in [f'"{schemas["ingest"]}".data_keys'] + [f'"{schemas["ledger"]}".{t}' for t in ledger_tables]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table} LIMIT 1")


def test_a_service_role_needs_its_password(endpoints):
    if not endpoints.database_url.startswith("postgresql://postgres"):
        pytest.skip("the container stack's server keeps its own authentication rules")
    for password in ("wrong-password", ""):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url_as(endpoints.database_url, role_of("router"), password)).close()
