"""Least privilege in PostgreSQL: each service connects as a role of its own, with its own
password, owns the schema it migrates, and can read or write no other service's tables (the
router cannot read ingest's data keys, nor the ledger's accounts). The auditor reads every
schema and writes none; the operator acts as the services and owns nothing."""

import uuid
from pathlib import Path

import psycopg
import pytest

from genline_stack.credentials import (
    AUDITOR,
    OPERATOR,
    PEOPLE,
    SERVICES,
    ensure_credentials,
    provision_roles,
    read_credentials,
    read_person,
    role_of,
    url_as,
)
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
        await migrate(role_url(endpoints, service), made[service], packages=[COMMON_MIGRATIONS, f"services.{service}"])
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
            psycopg.connect(url_as(endpoints.database_url, role_of("router"), password=password)).close()


# ---- the auditor's and the operator's own roles ------------------------------------------


def person_url(endpoints: Endpoints, person: str) -> str:
    return read_person(Path(endpoints.credentials_dir), person).database_url(endpoints.database_url)


@pytest.fixture(scope="module")
async def people(endpoints, schemas) -> None:
    """The people's roles as a stack start provisions them, after the schemas above exist
    (existing schemas are granted; later ones through default privileges)."""
    directory = Path(endpoints.credentials_dir)
    await provision_roles(endpoints.database_url, ensure_credentials(directory),
                          people={person: read_person(directory, person) for person in PEOPLE})


def test_the_auditor_reads_every_schema_and_can_write_nowhere(endpoints, schemas, people):
    with psycopg.connect(person_url(endpoints, AUDITOR), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "genline_auditor"
        for owner, schema in schemas.items():
            assert conn.execute(f'SELECT count(*) FROM "{schema}".{OWN_TABLE[owner]}').fetchone()[0] >= 0
            assert conn.execute(f'SELECT count(*) FROM "{schema}".outbox').fetchone()[0] >= 0  # the journal
            for write in (f'INSERT INTO "{schema}".outbox_horizon (topic, pruned_before) VALUES (\'t\', now())',
                          f'UPDATE "{schema}".{OWN_TABLE[owner]} SET {first_column(conn, schema, owner)} = NULL',
                          f'DELETE FROM "{schema}".outbox', f'TRUNCATE "{schema}".{OWN_TABLE[owner]}',
                          f'CREATE TABLE "{schema}".planted (x int)', f'DROP TABLE "{schema}".outbox',
                          f'ALTER TABLE "{schema}".outbox ADD COLUMN planted int'):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(write)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE SCHEMA planted_by_the_auditor")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE genline_ledger")  # a member of no service's role


def first_column(conn: psycopg.Connection, schema: str, owner: str) -> str:
    return conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
                        " AND table_name = %s ORDER BY ordinal_position LIMIT 1", [schema, OWN_TABLE[owner]]).fetchone()[0]


async def test_the_auditor_reads_a_schema_made_after_its_role(endpoints, people):
    """Default privileges: a service that migrates a new schema later grants the auditor reading."""
    schema = f"later{uuid.uuid4().hex[:6]}_ledger"
    await migrate(role_url(endpoints, "ledger"), schema, packages=[COMMON_MIGRATIONS, "services.ledger"])
    with psycopg.connect(person_url(endpoints, AUDITOR), autocommit=True) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".accounts').fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f'INSERT INTO "{schema}".outbox_horizon (topic, pruned_before) VALUES (\'t\', now())')


def test_the_operator_acts_as_the_services_and_as_nothing_more(endpoints, schemas, people):
    """It writes each service's journal as a rebuild does; it may not make roles, databases, or
    grant itself more (no superuser, no CREATEROLE), nor act as the auditor."""
    with psycopg.connect(person_url(endpoints, OPERATOR), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "genline_operator"
        for schema in schemas.values():
            conn.execute(f'UPDATE "{schema}".journal_floor SET checkpoint_at = checkpoint_at')
        assert conn.execute("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles"
                            " WHERE rolname = 'genline_operator'").fetchone()[0] is False
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE ROLE planted_by_the_operator")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET ROLE genline_auditor")
