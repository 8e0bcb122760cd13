"""Key-encryption keys: every job's data key is stored wrapped, never in clear.

A copy of the database alone (a backup, a replica, a dump) holds only wrapped keys, which
open nothing without the key-encryption key (KEK). Two kinds of KEK, each naming the rows
it wrapped in `data_keys.kek_id`:

* a local key file (`GENLINE_DATA_KEY_KEK_FILE`: JSON `{"active": ID, "keys": {ID:
  base64 of 32 bytes}}`, from a Secret mounted into ingest only): AES-256-GCM, a fresh
  96-bit nonce per key, the job's id as associated data, so a wrapped key moved to another
  job's row does not open; kek_id `local:<ID>`;
* AWS KMS (`GENLINE_DATA_KEY_KMS_KEY_ID`, a key id, ARN or alias; boto3, so the usual AWS
  credentials and `GENLINE_DATA_KEY_KMS_ENDPOINT_URL` for a compatible endpoint): Encrypt
  and Decrypt with the job's id as encryption context; kek_id `aws-kms:<key>`.

New keys are wrapped under the active KEK (KMS when configured, else the key file's
`active`); any row opens with the KEK it names, so rotating is: add the new KEK and make it
active, restart ingest (rows keep opening under the old one), run `genline data-keys
rewrap` (online, in small transactions), then retire the old KEK. Erasing a job still
deletes its row: a wrapped key no row names is gone, and the backups that still hold it
hold only the wrapped form. Rows from before wrapping (kek_id NULL) open as they are, and
`rewrap` wraps them.
"""

import base64
import functools
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
LOCAL, KMS = "local:", "aws-kms:"


class KeyUnavailable(Exception):
    """A wrapped key names a KEK this process does not hold, or does not open under it."""


def _aad(job_id: UUID) -> bytes:
    return b"genline/data-key/v1:" + job_id.bytes


@dataclass(frozen=True)
class LocalKeys:
    """The KEKs of a key file, by id, and the one new keys are wrapped under."""

    active: str
    keys: dict[str, bytes]

    @classmethod
    def read(cls, path: Path) -> "LocalKeys":
        try:
            document = json.loads(path.read_text())
            keys = {kid: base64.b64decode(value, validate=True) for kid, value in document["keys"].items()}
            active = document["active"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"GENLINE_DATA_KEY_KEK_FILE {path}: not a KEK file ({error})") from None
        if active not in keys or any(len(k) != 32 for k in keys.values()):
            raise ValueError(f"GENLINE_DATA_KEY_KEK_FILE {path}: 'active' must name one of 'keys', each 32 bytes")
        return cls(active, keys)

    def wrap(self, key: bytes, job_id: UUID) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return LOCAL + self.active, nonce + AESGCM(self.keys[self.active]).encrypt(nonce, key, _aad(job_id))

    def unwrap(self, kid: str, wrapped: bytes, *, job_id: UUID) -> bytes:
        kek = self.keys.get(kid)
        if kek is None:
            raise KeyUnavailable(f"no KEK {kid!r} in the key file")
        try:
            return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad(job_id))
        except InvalidTag:
            raise KeyUnavailable(f"the data key of job {job_id} does not open under KEK {kid!r}") from None


def new_key_file(path: Path, kid: str | None = None) -> str:
    """Add a new KEK to the file at `path` (made when missing, readable by its owner only)
    and make it the active one; returns its id."""
    document = json.loads(path.read_text()) if path.exists() else {"keys": {}}
    kid = kid or f"k{len(document['keys']) + 1}-{secrets.token_hex(3)}"
    document["keys"][kid] = base64.b64encode(os.urandom(32)).decode()
    document["active"] = kid
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(document, file)
    os.replace(temporary, path)
    return kid


@dataclass(kw_only=True)
class AwsKms:
    key_id: str
    endpoint_url: str | None = None
    region: str | None = None
    _client: Any = field(default=None, repr=False)

    def client(self) -> Any:
        if self._client is None:
            import boto3  # boto3 ships no type information (pyproject.toml: ignore_missing_imports)

            self._client = boto3.client("kms", endpoint_url=self.endpoint_url, region_name=self.region)
        return self._client

    def wrap(self, key: bytes, job_id: UUID) -> tuple[str, bytes]:
        answer = self.client().encrypt(KeyId=self.key_id, Plaintext=key, EncryptionContext={"genline_job": str(job_id)})
        return KMS + self.key_id, bytes(answer["CiphertextBlob"])

    def unwrap(self, key_id: str, wrapped: bytes, *, job_id: UUID) -> bytes:
        from botocore.exceptions import (  # botocore ships no type information, as boto3
            BotoCoreError,
            ClientError,
        )

        try:
            return bytes(self.client().decrypt(CiphertextBlob=wrapped, KeyId=key_id,
                                               EncryptionContext={"genline_job": str(job_id)})["Plaintext"])
        except (ClientError, BotoCoreError) as error:
            raise KeyUnavailable(f"KMS did not open the data key of job {job_id}: {error}") from None


@dataclass
class Keyring:
    """What ingest wraps new data keys with and opens stored ones with."""

    local: LocalKeys | None = None
    kms: AwsKms | None = None

    @property
    def active(self) -> str | None:
        """The kek_id new keys get; None: stored in clear (development without a KEK only)."""
        if self.kms is not None:
            return KMS + self.kms.key_id
        return LOCAL + self.local.active if self.local is not None else None

    def wrap(self, key: bytes, job_id: UUID) -> tuple[str | None, bytes]:
        if self.kms is not None:
            return self.kms.wrap(key, job_id)
        if self.local is not None:
            return self.local.wrap(key, job_id)
        return None, key

    def unwrap(self, kek_id: str | None, stored: bytes, *, job_id: UUID) -> bytes:
        if kek_id is None:
            return stored
        if kek_id.startswith(LOCAL) and self.local is not None:
            return self.local.unwrap(kek_id.removeprefix(LOCAL), stored, job_id=job_id)
        if kek_id.startswith(KMS) and self.kms is not None:
            return self.kms.unwrap(kek_id.removeprefix(KMS), stored, job_id=job_id)
        raise KeyUnavailable(f"the data key of job {job_id} is wrapped under {kek_id!r}, which this ingest does not hold")


class KeySettings(Protocol):
    """Where a process's key-encryption keys are (ingest's settings, or an auditor's)."""

    @property
    def data_key_kek_file(self) -> str | None: ...
    @property
    def data_key_kms_key_id(self) -> str | None: ...
    @property
    def data_key_kms_endpoint_url(self) -> str | None: ...
    @property
    def s3_region(self) -> str: ...


def keyring_of(settings: KeySettings) -> Keyring:
    """The process's keyring for these settings, read once (a new KEK takes a restart)."""
    return _keyring(kek_file=settings.data_key_kek_file, kms_key_id=settings.data_key_kms_key_id,
                    kms_endpoint_url=settings.data_key_kms_endpoint_url, region=settings.s3_region)


@functools.cache  # one keyring for each place the keys are kept
def _keyring(*, kek_file: str | None, kms_key_id: str | None, kms_endpoint_url: str | None, region: str) -> Keyring:
    local = LocalKeys.read(Path(kek_file)) if kek_file else None
    kms = AwsKms(key_id=kms_key_id, endpoint_url=kms_endpoint_url, region=region) if kms_key_id else None
    return Keyring(local, kms)
