"""Each service's own credentials on the embedded stack (and on the tests' container stack),
as a Kubernetes Secret per service holds them in production: a PostgreSQL role and its
password, the service's identity key for internal calls, and its Kafka user. They are made
once, kept in `<data>/credentials/<service>.json` (readable by the owner only) and reused by
later starts, so a restart on the same data keeps working.

The stack's own provisioning, the tests' assertions and the audit tools connect with the
administrator's URL; a service connects as `genline_<service>`, which owns its schemas and
is granted nothing on the others (`provision_roles`).
"""

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import psycopg.sql

from services.common.contracts import PUBLISHERS
from services.common.identity import new_service_key, public_key_of
from services.common.provenance import new_signing_credentials
from services.delivery.provenance import wrap_signing_key
from services.ingest.key_encryption import new_key_file

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
        return url_as(admin_url, role_of(self.service), self.database_password)

    def env(self, admin_url: str, public_keys: dict[str, str], directory: Path) -> dict[str, str]:
        env = {"GENLINE_DATABASE_URL": self.database_url(admin_url), "GENLINE_SERVICE_KEY": self.identity_key,
               "GENLINE_SERVICE_KEYS": json.dumps(public_keys)}
        if self.service == "ingest":  # the key-encryption key of the jobs' data keys, ingest's alone
            env |= kek_env(directory) | {"GENLINE_PROVENANCE_TRUST_ANCHORS_FILE": str(directory / PROVENANCE_ANCHOR)}
        if self.service == "delivery":  # the Content Credentials certificate, its key wrapped under delivery's KEK
            env |= {"GENLINE_PROVENANCE_CERTIFICATE_CHAIN_FILE": str(directory / PROVENANCE_CHAIN),
                    "GENLINE_PROVENANCE_SIGNING_KEY_FILE": str(directory / PROVENANCE_KEY),
                    "GENLINE_PROVENANCE_KEK_FILE": str(directory / PROVENANCE_KEK)}
        return env


def public_keys(directory: Path) -> dict[str, str]:
    """Every service's public identity key, as GENLINE_SERVICE_KEYS names them."""
    return {service: public_key_of(read_credentials(directory, service).identity_key) for service in SERVICES}


def url_as(database_url: str, user: str, password: str) -> str:
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


def ensure_credentials(directory: Path) -> dict[str, ServiceCredentials]:
    """Every service's credentials, made on first use and read back afterwards."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (directory / KEK_FILE).exists():
        new_key_file(directory / KEK_FILE)
    if not (directory / PROVENANCE_KEY).exists():
        make_provenance_credentials(directory)
    made = {}
    for service in SERVICES:
        path = directory / f"{service}.json"
        if path.exists():
            made[service] = ServiceCredentials(**json.loads(path.read_text()))
            continue
        made[service] = ServiceCredentials.new(service)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(asdict(made[service]), file)
    return made



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


async def provision_roles(admin_url: str, credentials: dict[str, ServiceCredentials]) -> None:
    """A login role per service with its password, allowed to connect and to create its own
    schemas; schemas made before roles existed (an older data folder) are handed to their
    service's role with everything in them."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        database = (await (await conn.execute("SELECT current_database()")).fetchone())[0]
        for service, creds in credentials.items():
            role = psycopg.sql.Identifier(role_of(service))
            exists = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                               [role_of(service)])).fetchone()
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(psycopg.sql.SQL(verb + " ROLE {} LOGIN NOINHERIT PASSWORD {}").format(
                role, psycopg.sql.Literal(creds.database_password)))
            await conn.execute(psycopg.sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(
                psycopg.sql.Identifier(database), role))
            await adopt_schemas(conn, service)


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
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S')", [schema])).fetchall()
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
