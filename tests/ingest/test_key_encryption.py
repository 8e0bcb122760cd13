"""Data keys wrapped under key-encryption keys (services/ingest/key_encryption.py): a local
key file, and AWS KMS as moto's server speaks it; rotation re-wraps stored keys online in
PostgreSQL; erasure still destroys a key."""

import json
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from services.common.sealing import new_data_key
from services.ingest import data_keys
from services.ingest.key_encryption import AwsKms, Keyring, KeyUnavailable, LocalKeys, new_key_file

JOB, OTHER = uuid.uuid4(), uuid.uuid4()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "kek.json"
    new_key_file(path)
    return path


def test_a_wrapped_key_opens_under_its_kek_for_its_job_only(key_file):
    keys, key = LocalKeys.read(key_file), new_data_key()
    kek_id, wrapped = keys.wrap(key, JOB)
    assert kek_id == f"local:{keys.active}" and key not in wrapped and len(wrapped) == 60
    assert keys.unwrap(keys.active, wrapped, job_id=JOB) == key
    with pytest.raises(KeyUnavailable):  # moved to another job's row
        keys.unwrap(keys.active, wrapped, job_id=OTHER)
    with pytest.raises(KeyUnavailable):
        keys.unwrap(keys.active, wrapped[:-1] + bytes([wrapped[-1] ^ 1]), job_id=JOB)
    with pytest.raises(KeyUnavailable, match="no KEK"):
        keys.unwrap("k-unknown", wrapped, job_id=JOB)


def test_a_new_kek_becomes_active_and_the_old_one_still_opens(key_file):
    old = LocalKeys.read(key_file)
    _, wrapped = old.wrap(b"k" * 32, JOB)
    new_key_file(key_file)
    rotated = Keyring(LocalKeys.read(key_file))
    assert rotated.active != f"local:{old.active}"
    assert rotated.unwrap(f"local:{old.active}", wrapped, job_id=JOB) == b"k" * 32
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("document", [{}, {"active": "a", "keys": {}}, {"active": "a", "keys": {"a": "c2hvcnQ="}},
                                      {"active": "b", "keys": {"a": "A" * 44}}])
def test_a_broken_key_file_is_refused_naming_it(tmp_path, document):
    path = tmp_path / "kek.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="GENLINE_DATA_KEY_KEK_FILE"):
        LocalKeys.read(path)


def test_without_a_kek_keys_stay_as_they_are_and_a_wrapped_one_is_refused(key_file):
    bare, key = Keyring(), new_data_key()
    assert bare.wrap(key, JOB) == (None, key) and bare.unwrap(None, key, job_id=JOB) == key
    kek_id, wrapped = Keyring(LocalKeys.read(key_file)).wrap(key, JOB)
    with pytest.raises(KeyUnavailable, match="does not hold"):
        bare.unwrap(kek_id, wrapped, job_id=JOB)


@pytest.fixture(scope="module")
def kms_endpoint():
    from moto.server import ThreadedMotoServer

    from genline_stack.ports import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def kms(kms_endpoint, monkeypatch):
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("kms", endpoint_url=kms_endpoint, region_name="us-east-1")
    key_id = client.create_key(Description="genline data keys")["KeyMetadata"]["KeyId"]
    return AwsKms(key_id=key_id, endpoint_url=kms_endpoint, region="us-east-1")


def test_kms_wraps_with_the_job_as_encryption_context(kms):
    key = new_data_key()
    kek_id, wrapped = kms.wrap(key, JOB)
    assert kek_id == f"aws-kms:{kms.key_id}" and key not in wrapped
    keyring = Keyring(kms=kms)
    assert keyring.unwrap(kek_id, wrapped, job_id=JOB) == key
    with pytest.raises(KeyUnavailable):
        keyring.unwrap(kek_id, wrapped, job_id=OTHER)


@pytest.fixture
async def table(endpoints):
    schema = f"kek_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(endpoints.database_url, autocommit=True,
                                                     row_factory=dict_row) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        await conn.execute("CREATE TABLE data_keys (job_id uuid PRIMARY KEY, tenant_id text NOT NULL,"
                           " key bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), kek_id text)")
        yield conn
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_rotation_rewraps_every_stored_key_and_erasure_still_destroys_one(table, key_file, kms):
    jobs = {uuid.uuid4(): new_data_key() for _ in range(25)}
    clear = {uuid.uuid4(): new_data_key() for _ in range(3)}
    first = Keyring(LocalKeys.read(key_file))
    for job, key in jobs.items():
        await data_keys.insert(table, "t", key=await data_keys.wrapped(job, key, keyring=first))
    for job, key in clear.items():  # stored before wrapping
        await table.execute("INSERT INTO data_keys (job_id, tenant_id, key) VALUES (%s, 't', %s)", [job, key])

    new_key_file(key_file)
    second = Keyring(LocalKeys.read(key_file))
    assert [await data_keys.rewrap(table, second, batch=10) for _ in range(4)] == [10, 10, 8, 0]
    rows = await (await table.execute("SELECT DISTINCT kek_id FROM data_keys")).fetchall()
    assert [r["kek_id"] for r in rows] == [second.active]
    for job, key in (jobs | clear).items():
        assert await data_keys.key_of(table, job, keyring=second) == key

    to_kms = Keyring(LocalKeys.read(key_file), kms)  # and on to KMS, the old file still opening
    while await data_keys.rewrap(table, to_kms):
        pass
    assert {r["kek_id"] for r in await (await table.execute("SELECT kek_id FROM data_keys")).fetchall()} == {
        to_kms.active}
    erased = next(iter(jobs))
    assert await data_keys.destroy(table, erased)
    assert await data_keys.key_of(table, erased, keyring=to_kms) is None
    assert await data_keys.key_of(table, next(iter(clear)), keyring=Keyring(kms=kms)) == next(iter(clear.values()))
