"""Each service's own credentials on the embedded stack (and on the tests' container stack),
as a Kubernetes Secret per service holds them in production: a PostgreSQL role and its
password, the service's identity key for internal calls, and its Kafka user. They are made
once, kept in `<data>/credentials/<service>.json` (readable by the owner only) and reused by
later starts, so a restart on the same data keeps working.

The stack's own provisioning and the tests' assertions connect with the administrator's URL;
a service connects as `genline_<service>`, which owns its schemas and is granted nothing on
the others (`provision_roles`). Two people have roles of their own, and no service key:

* `genline_auditor` (the replays and audits) reads every service's schemas, the journals and
  the read models, and may write nothing;
* `genline_operator` (`genline bus`) publishes the services' journals again after a
  disaster, which writes each journal's bookkeeping as its service would: it is a member of
  every service's role, and so may do what any service may, and nothing more.
"""

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import psycopg.sql

from services.common.contracts import PUBLISHERS
from services.common.identity import new_service_key, public_key_of
from services.common.provenance import new_signing_credentials
from services.delivery.provenance import wrap_signing_key
from services.ingest.key_encryption import new_key_file
from services.ingest.signing_key import new_signing_key_text

SERVICES = PUBLISHERS


def role_of(service: str) -> str:
    return f"genline_{service}"


@dataclass(frozen=True)
class ServiceCredentials:
    service: str
    database_password: str
    # The Ed25519 seed of the service's identity for internal calls (services/common/identity.py).
    identity_key: str

    @classmethod
    def new(cls, service: str) -> "ServiceCredentials":
        return cls(service=service, database_password=secrets.token_urlsafe(24), identity_key=new_service_key()[0])

    def database_url(self, admin_url: str) -> str:
        """The administrator's URL with this service's role and password instead."""
        return url_as(admin_url, role_of(self.service), password=self.database_password)

    def env(self, admin_url: str, public_keys: dict[str, str], *, directory: Path) -> dict[str, str]:
        env = {"GENLINE_DATABASE_URL": self.database_url(admin_url), "GENLINE_SERVICE_KEY": self.identity_key,
               "GENLINE_SERVICE_KEYS": json.dumps(public_keys)}
        if self.service == "ingest":  # the jobs' key-encryption key and the receipt signing key, ingest's alone
            env |= kek_env(directory) | receipt_key_env(directory)
            env |= {"GENLINE_PROVENANCE_TRUST_ANCHORS_FILE": str(directory / PROVENANCE_ANCHOR)}
        if self.service == "delivery":  # the Content Credentials certificate, its key wrapped under delivery's KEK
            env |= {"GENLINE_PROVENANCE_CERTIFICATE_CHAIN_FILE": str(directory / PROVENANCE_CHAIN),
                    "GENLINE_PROVENANCE_SIGNING_KEY_FILE": str(directory / PROVENANCE_KEY),
                    "GENLINE_PROVENANCE_KEK_FILE": str(directory / PROVENANCE_KEK)}
        return env


# Each service's own object-store key on the embedded stack, and what it may do in each bucket
# (SeaweedFS's bucket-scoped actions; deploy/k8s/object-store-policies.json says the same as
# S3 bucket policies): the router writes candidates and reads them back, the scorer reads
# them, delivery reads them and writes the public bucket (and removes what retention and
# erasure remove from both), ingest writes uploads, reads candidates for the console and signs
# links to delivered images. The ledger holds none.
OBJECT_STORE_KEYS_FILE = "object-store.json"
BUCKET_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "router": {"internal": ("Read", "Write", "List")},
    "scorer": {"internal": ("Read", "List")},
    "delivery": {"internal": ("Read", "Write", "List"), "public": ("Read", "Write", "List")},
    "ingest": {"internal": ("Read", "Write", "List"), "public": ("Read",)},
}


def ensure_object_store_keys(directory: Path) -> dict[str, dict[str, str]]:
    """Each service's object-store key (access key id and secret), made on first use."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / OBJECT_STORE_KEYS_FILE
    if not path.exists():
        write_private(path, {service: {"access_key_id": f"genline-{service}-{secrets.token_hex(4)}",
                                       "secret_access_key": secrets.token_urlsafe(30)} for service in BUCKET_ACTIONS})
    keys: dict[str, dict[str, str]] = json.loads(path.read_text())
    return keys


def object_store_identities(directory: Path, buckets: dict[str, str]) -> list[dict[str, Any]]:
    """SeaweedFS identities, one per service, each allowed its actions on the named buckets
    only (`buckets`: internal and public, by their names)."""
    return [{"name": f"genline-{service}",
             "credentials": [{"accessKey": key["access_key_id"], "secretKey": key["secret_access_key"]}],
             "actions": [f"{action}:{buckets[bucket]}" for bucket, actions in BUCKET_ACTIONS[service].items()
                         for action in actions]}
            for service, key in ensure_object_store_keys(directory).items()]


def object_store_env(directory: Path, service: str) -> dict[str, str] | None:
    """The service's own object-store key where the stack made per-service keys (None: it did
    not; the stack's one key is used), and none at all for a service that uses no store."""
    path = directory / OBJECT_STORE_KEYS_FILE
    if not path.exists():
        return None
    key = json.loads(path.read_text()).get(service)
    return {"GENLINE_S3_ACCESS_KEY_ID": key["access_key_id"],
            "GENLINE_S3_SECRET_ACCESS_KEY": key["secret_access_key"]} if key else {}


OPERATOR, AUDITOR = "operator", "auditor"
PEOPLE = (OPERATOR, AUDITOR)


@dataclass(frozen=True)
class PersonCredentials:
    """An operator's or an auditor's database login: no identity key, no object-store key."""

    person: str
    database_password: str

    def database_url(self, admin_url: str) -> str:
        return url_as(admin_url, role_of(self.person), password=self.database_password)


def read_person(directory: Path, person: str) -> PersonCredentials:
    return PersonCredentials(**json.loads((directory / f"{person}.json").read_text()))


def public_keys(directory: Path) -> dict[str, str]:
    """Every service's public identity key, as GENLINE_SERVICE_KEYS names them."""
    return {service: public_key_of(read_credentials(directory, service).identity_key) for service in SERVICES}


def url_as(database_url: str, user: str, *, password: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


KEK_FILE = "ingest-kek.json"
# The deployment's Content Credentials: a CA of its own (the trust anchor ingest publishes)
# and the signing certificate it issued, whose key is kept only wrapped under delivery's KEK.
PROVENANCE_ANCHOR, PROVENANCE_CHAIN = "c2pa-anchor.pem", "c2pa-chain.pem"
PROVENANCE_KEY, PROVENANCE_KEK = "c2pa-signing-key.json", "delivery-kek.json"


def kek_env(directory: Path) -> dict[str, str]:
    """Where the jobs' key-encryption key is, for ingest and for the operator's replays."""
    return {"GENLINE_DATA_KEY_KEK_FILE": str(directory / KEK_FILE)}


# The deployment's one receipt signing key, which every ingest replica signs with: the keys
# document then names the same active key whichever replica answers.
RECEIPT_KEY_FILE = "ingest-receipt-signing-key"


def receipt_key_env(directory: Path) -> dict[str, str]:
    return {"GENLINE_RECEIPT_SIGNING_KEY": (directory / RECEIPT_KEY_FILE).read_text().strip()}


def ensure_credentials(directory: Path) -> dict[str, ServiceCredentials]:
    """Every service's credentials, made on first use and read back afterwards."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (directory / KEK_FILE).exists():
        new_key_file(directory / KEK_FILE)
    if not (directory / RECEIPT_KEY_FILE).exists():
        write_private_text(directory / RECEIPT_KEY_FILE, new_signing_key_text())
    if not (directory / PROVENANCE_KEY).exists():
        make_provenance_credentials(directory)
    made = {}
    for service in SERVICES:
        path = directory / f"{service}.json"
        if path.exists():
            made[service] = ServiceCredentials(**json.loads(path.read_text()))
            continue
        made[service] = ServiceCredentials.new(service)
        write_private(path, asdict(made[service]))
    for person in PEOPLE:
        if not (directory / f"{person}.json").exists():
            write_private(directory / f"{person}.json", asdict(PersonCredentials(person, secrets.token_urlsafe(24))))
    return made


def write_private(path: Path, content: dict[str, Any]) -> None:
    """`content` as JSON in a new file only its owner reads."""
    write_private_text(path, json.dumps(content))


def write_private_text(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def make_provenance_credentials(directory: Path) -> None:
    """The stack's CA and signing certificate (genline_stack's own, as production brings the
    operator's), the key written only wrapped; the key file last, which marks them made."""
    credentials = new_signing_credentials("Genline embedded stack")
    if not (directory / PROVENANCE_KEK).exists():
        new_key_file(directory / PROVENANCE_KEK)
    (directory / PROVENANCE_ANCHOR).write_text(credentials.anchor_pem)
    (directory / PROVENANCE_CHAIN).write_text(credentials.chain_pem)
    descriptor = os.open(directory / PROVENANCE_KEY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(wrap_signing_key(credentials.key_pem, directory / PROVENANCE_KEK), file)


def read_credentials(directory: Path, service: str) -> ServiceCredentials:
    return ServiceCredentials(**json.loads((directory / f"{service}.json").read_text()))


async def provision_roles(admin_url: str, credentials: dict[str, ServiceCredentials],
                          *, people: dict[str, PersonCredentials] | None = None) -> None:
    """A login role per service with its password, allowed to connect and to create its own
    schemas; schemas made before roles existed (an older data folder) are handed to their
    service's role with everything in them. Then the operator's and the auditor's roles, when
    `people` holds their credentials."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        row = await (await conn.execute("SELECT current_database()")).fetchone()
        assert row is not None, "a SELECT of a function answers one row"
        database = row[0]
        for service, creds in credentials.items():
            await login_role(conn, role_of(service), password=creds.database_password, inherit=False)
            await conn.execute(psycopg.sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                psycopg.sql.Identifier(database), psycopg.sql.Identifier(role_of(service))))
            await adopt_schemas(conn, service)
        if people:
            await provision_people(conn, database, services=list(credentials), people=people)


async def login_role(conn: psycopg.AsyncConnection, role: str, *, password: str, inherit: bool) -> None:
    exists = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])).fetchone()
    verb = "ALTER" if exists else "CREATE"
    await conn.execute(psycopg.sql.SQL(verb + " ROLE {} LOGIN " + ("INHERIT" if inherit else "NOINHERIT")
                                       + " PASSWORD {}").format(psycopg.sql.Identifier(role),
                                                                psycopg.sql.Literal(password)))


async def provision_people(conn: psycopg.AsyncConnection, database: str, *, services: list[str],
                           people: dict[str, PersonCredentials]) -> None:
    """The auditor reads what every service's role makes, now and later (default privileges
    of each service's role), and writes nothing; the operator acts as any service (a member
    of their roles), with no privilege of its own."""
    sql, name = psycopg.sql.SQL, psycopg.sql.Identifier
    auditor, operator = name(role_of(AUDITOR)), name(role_of(OPERATOR))
    await login_role(conn, role_of(AUDITOR), password=people[AUDITOR].database_password, inherit=False)
    await login_role(conn, role_of(OPERATOR), password=people[OPERATOR].database_password, inherit=True)
    for person in (auditor, operator):
        await conn.execute(sql("GRANT CONNECT ON DATABASE {} TO {}").format(name(database), person))
    for service in services:
        owner = name(role_of(service))
        await conn.execute(sql("GRANT {} TO {}").format(owner, operator))
        for grant in ("USAGE ON SCHEMAS", "SELECT ON TABLES", "SELECT ON SEQUENCES"):
            await conn.execute(sql("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT " + grant + " TO {}").format(
                owner, auditor))
        schemas = await (await conn.execute(
            "SELECT n.nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE r.rolname = %s",
            [role_of(service)])).fetchall()
        for (schema,) in schemas:
            await conn.execute(sql("GRANT USAGE ON SCHEMA {} TO {}").format(name(schema), auditor))
            await conn.execute(sql("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(name(schema), auditor))
            await conn.execute(sql("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(name(schema), auditor))


async def adopt_schemas(conn: psycopg.AsyncConnection, service: str) -> None:
    """Hand every schema of `service` (`<service>`, `<namespace>_<service>`) that its role
    does not own to that role, with its tables, sequences and functions."""
    role = role_of(service)
    schemas = await (await conn.execute(
        "SELECT n.nspname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner"
        " WHERE (n.nspname = %s OR n.nspname LIKE %s) AND r.rolname <> %s",
        [service, f"%\\_{service}", role])).fetchall()
    for (schema,) in schemas:
        await conn.execute(psycopg.sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(role)))
        objects = await (await conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
            # A sequence owned by a table's column follows its table (and refuses a change of its own).
            " AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "  AND d.objid = c.oid AND d.deptype IN ('a', 'i')))", [schema])).fetchall()
        for name, kind in objects:
            what = {"S": "SEQUENCE", "v": "VIEW", "m": "MATERIALIZED VIEW"}.get(kind, "TABLE")
            await conn.execute(psycopg.sql.SQL("ALTER " + what + " {}.{} OWNER TO {}").format(
                psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name), psycopg.sql.Identifier(role)))
        functions = await (await conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = %s", [schema])).fetchall()
        for (signature,) in functions:
            await conn.execute(psycopg.sql.SQL("ALTER FUNCTION " + signature + " OWNER TO {}").format(
                psycopg.sql.Identifier(role)))
