"""Tenant content sealed in events: crypto-shredding.

Every job gets its own 256-bit data key when it is submitted; ingest keeps it in its
`data_keys` table and seals the job's prompt with it (AES-256-GCM, a fresh 96-bit nonce, the
job id and field name as associated data, so a sealed value cannot be moved to another job
or field). Events carry only the sealed value. The services that need the clear text (the
router to generate, the scorer for prompt alignment, delivery for the webhook body) ask
ingest's internal API for the key (`services.common.data_keys`).

Erasing a job deletes its key: every copy of its events — on the topics, in the journals,
in backups — still parses, and its prompt reads as `ERASED`, never as an error.
"""

import base64
import os
from dataclasses import dataclass
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common.contracts import SealedText

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
# What an erased job's prompt reads as, wherever it is opened (a replay, an audit, a webhook
# sent again after the erasure).
ERASED = "[erased]"


class BrokenSeal(ValueError):
    """A sealed value that its job's key does not open: it was changed, or moved from another
    job or field."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)


@dataclass(frozen=True)
class JobField:
    """A job's field that holds sealed text: a value sealed for one opens for no other."""

    job_id: UUID | str
    name: str

    def associated(self) -> bytes:
        """The data a seal is bound to (AES-GCM's associated data)."""
        return f"genline/{self.job_id}/{self.name}".encode()


def seal(key: bytes, field: JobField, *, text: str) -> SealedText:
    nonce = os.urandom(NONCE_BYTES)  # random per value: a key seals a handful of values, far from the 2^32 bound
    ciphertext = AESGCM(key).encrypt(nonce, text.encode(), field.associated())
    return SealedText(ciphertext=base64.b64encode(nonce + ciphertext).decode())


def open_sealed(key: bytes | None, field: JobField, *, sealed: SealedText) -> str:
    """The clear text; ERASED when the key is gone (or an old event's clear text was blanked
    by an erasure). BrokenSeal when the key does not open it."""
    if sealed.ciphertext is None:
        return sealed.clear or ERASED
    if key is None:
        return ERASED
    raw = base64.b64decode(sealed.ciphertext)
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], field.associated()).decode()
    except Exception as error:  # InvalidTag: changed, or sealed for another job or field
        raise BrokenSeal(f"the sealed {field.name} of job {field.job_id} does not open with its key") from error


@dataclass(frozen=True)
class SubjectField:
    """A subject's sealed content (its photos, its centroid): bound to the subject and the
    field, under the subject's own data key (kept by ingest beside the jobs' keys)."""

    subject_id: UUID | str
    name: str

    def associated(self) -> bytes:
        return f"genline/subject/{self.subject_id}/{self.name}".encode()


def seal_bytes(key: bytes, field: SubjectField, *, data: bytes) -> bytes:
    """Nonce, ciphertext and tag of `data`, as one object is stored."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, data, field.associated())


def open_bytes(key: bytes, field: SubjectField, *, sealed: bytes) -> bytes:
    """The clear bytes; BrokenSeal when the key does not open them (changed, or moved)."""
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], field.associated())
    except Exception as error:  # InvalidTag
        raise BrokenSeal(f"the sealed {field.name} of subject {field.subject_id} does not open with its key") from error


def seal_subject_text(key: bytes, field: SubjectField, *, text: str) -> SealedText:
    """A subject's text (its centroid, as base64) sealed as events carry it."""
    return SealedText(ciphertext=base64.b64encode(seal_bytes(key, field, data=text.encode())).decode())


def open_subject_text(key: bytes | None, field: SubjectField, *, sealed: SealedText) -> str:
    """The clear text; ERASED once the subject's key is gone."""
    if sealed.ciphertext is None:
        return sealed.clear or ERASED
    if key is None:
        return ERASED
    return open_bytes(key, field, sealed=base64.b64decode(sealed.ciphertext)).decode()
