"""`genline replay receipts`: check every issued receipt against the record, hash by hash.

For each tenant's chain of receipts (ingest's `receipts`), in sequence order:

1. the signature verifies with its published key, the receipt hashes to its `sha256`, and it
   names the hash of the receipt before it (nothing changed, dropped or slipped in);
2. its credits (reserved, charged, released, retry tokens, a video job's seconds charged, a job
   of a subject's training line) and price book version are those of the ledger's journal
   (CreditsReserved, ReservationSettled and TrainingSettled of the job);
3. every delivered output it lists is in the public bucket with that sha256 and size.

Prints every difference and exits non-zero if there is any. An output no longer stored (its
job erased, or past its tenant's retention) cannot be checked: it is counted, not a difference.
"""

import asyncio
import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg.rows import TupleRow

from services.common.bus import Differences, client_options, decoded_envelopes, read_topic_to_end, report
from services.common.contracts import CreditsReserved, ReservationSettled, TrainingSettled, topic_of
from services.common.storage import ObjectStore, StorageError
from services.ingest.receipts import store
from services.ingest.receipts.document import canonical, receipt_sha256
from services.ingest.settings import IngestSettings


@dataclass
class LedgerJournal:
    """What the ledger's journal says of each job's credits."""

    reserved: dict[UUID, CreditsReserved] = field(default_factory=dict)
    settled: dict[UUID, ReservationSettled] = field(default_factory=dict)
    trainings: dict[UUID, TrainingSettled] = field(default_factory=dict)

    def credits(self, job_id: UUID) -> dict[str, Any]:
        reserved, settled = self.reserved.get(job_id), self.settled.get(job_id)
        return {"reserved": settled.reserved if settled else 0, "charged": settled.charged if settled else 0,
                "released": settled.released if settled else 0,
                "retry_tokens_used": settled.tokens_used if settled else 0,
                "price_book_version": reserved.pricebook_version if reserved else None}


async def read_journal(bootstrap: str | dict[str, Any], namespace: str) -> tuple[LedgerJournal, int]:
    envelopes, malformed = decoded_envelopes(await read_topic_to_end(bootstrap, topic_of("ledger", namespace)))
    journal = LedgerJournal()
    for envelope in envelopes:
        if isinstance(envelope.event, CreditsReserved):
            journal.reserved[envelope.event.job_id] = envelope.event
        elif isinstance(envelope.event, ReservationSettled):
            journal.settled[envelope.event.job_id] = envelope.event
        elif isinstance(envelope.event, TrainingSettled):
            journal.trainings[envelope.event.job_id] = envelope.event
    return journal, malformed


def signature_problem(document: dict[str, Any], keys: dict[str, Ed25519PublicKey]) -> str | None:
    body, signature = document["receipt"], document["signature"]
    key = keys.get(signature.get("kid"))
    if key is None:
        return f"signed with key {signature.get('kid')!r}, which is not published"
    try:
        key.verify(_unb64url(signature["value"]), canonical(body))
    except (InvalidSignature, ValueError):
        return "the signature does not verify"
    if document["sha256"] != receipt_sha256(body):
        return f"sha256 {document['sha256']} is not the hash of its content ({receipt_sha256(body)})"
    return None


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def chain_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Each receipt's place in its tenant's chain: sequence numbers one after another, each
    naming the hash of the one before (documents in sequence order, one tenant)."""
    problems, previous = [], None
    for expected, document in enumerate(documents, start=1):
        body = document["receipt"]
        if body["sequence"] != expected:
            problems.append(f"receipt={body['job_id']} sequence {body['sequence']}: receipt {expected} is missing")
            break
        if body["previous_sha256"] != previous:
            problems.append(f"receipt={body['job_id']} previous_sha256: chain={previous} receipt={body['previous_sha256']}")
        previous = receipt_sha256(body)
    return problems


async def output_problems(objects: ObjectStore, body: dict[str, Any]) -> tuple[list[str], int]:
    """Differences between the outputs a receipt lists and the public bucket; and how many
    outputs are no longer stored."""
    problems, gone = [], 0
    for output in body["outputs"]:
        try:
            data = await objects.get(objects.public_bucket, output["key"])
        except StorageError as error:
            if error.status != 404:
                raise
            gone += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        if (digest, len(data)) != (output["sha256"], output["size_bytes"]):
            problems.append(f"receipt={body['job_id']} output {output['n']} ({output['key']}): receipt sha256="
                            f"{output['sha256']} size={output['size_bytes']}, bucket sha256={digest} size={len(data)}")
    return problems, gone


def credit_problems(body: dict[str, Any], journal: LedgerJournal) -> list[str]:
    job_id = UUID(body["job_id"])
    recorded = journal.credits(job_id)
    if "seconds_charged" in body["credits"]:  # a video job's
        settled = journal.settled.get(job_id)
        recorded["seconds_charged"] = settled.delivered_seconds if settled else 0
    if "training" in body["credits"]:  # a job of a subject's training line
        line = journal.trainings.get(job_id)
        recorded["training"] = {"reserved": line.held, "charged": line.charged, "released": line.released} \
            if line else None
    return [f"receipt={body['job_id']} credits.{name}: receipt={body['credits'][name]!r} journal={value!r}"
            for name, value in recorded.items() if body["credits"][name] != value]


def load_receipts(conn: psycopg.Connection[TupleRow], schema: str, *, tenant: str | None) -> dict[str, list[dict[str, Any]]]:
    rows = store.receipt_documents(conn, schema, tenant=tenant)
    chains: dict[str, list[dict[str, Any]]] = {}
    for tenant_id, document in rows:
        chains.setdefault(tenant_id, []).append(document)
    return chains


def load_keys(conn: psycopg.Connection[TupleRow], schema: str) -> dict[str, Ed25519PublicKey]:
    return {kid: Ed25519PublicKey.from_public_bytes(bytes(public))
            for kid, public in store.public_keys(conn, schema)}


async def check(settings: IngestSettings, chains: dict[str, list[dict[str, Any]]],
                *, keys: dict[str, Ed25519PublicKey]) -> tuple[list[str], int, int, int]:
    journal, malformed = await read_journal(client_options(settings), settings.topic_namespace)
    objects = ObjectStore(settings)
    lines, gone, checked = [], 0, 0
    try:
        for documents in chains.values():
            lines += chain_problems(documents)
            for document in documents:
                body = document["receipt"]
                if problem := signature_problem(document, keys):
                    lines.append(f"receipt={body['job_id']} signature: {problem}")
                lines += credit_problems(body, journal)
                found, missing = await output_problems(objects, body)
                lines += found
                gone += missing
                checked += len(body["outputs"]) - missing
    finally:
        await objects.aclose()
    return lines, gone, checked, malformed


@dataclass(frozen=True)
class ReceiptReplay:
    """Which receipts a replay checks: those of the live schema, one tenant's or every one's."""

    schema: str = "ingest"
    tenant: str | None = None


def replay_receipts(settings: IngestSettings, replay: ReceiptReplay = ReceiptReplay(),
                    *, out: Callable[[str], object] = print) -> int:
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        chains, keys = load_receipts(conn, replay.schema, tenant=replay.tenant), load_keys(conn, replay.schema)
    lines, gone, checked, malformed = asyncio.run(check(settings, chains, keys=keys))
    receipts = sum(len(documents) for documents in chains.values())
    out(f"checked {receipts} receipts of {len(chains)} tenants against the ledger's journal and {checked} delivered"
        " objects")
    if gone:
        out(f"note: {gone} outputs are no longer stored (erased, or past their retention) and were not checked")
    return report(out, Differences(lines=lines, differing=len({line.split()[0] for line in lines}), noun="receipt", malformed=malformed))
