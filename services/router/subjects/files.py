"""A subject's files as the router reads and keeps them: its photos, opened with the subject's
data key (DESIGN.md §13: `subjects/{tenant}/{subject}/{sha256}`, sealed with
`seal_bytes(key, SubjectField(subject, "photo/{sha256}"), clear)`), and the weights of its
identities, copied into the internal bucket as soon as a training made them
(`identities/{tenant}/{subject}/{identity}/weights.safetensors`, `.zip` for the local model's)
and handed to models by a presigned link.

The subject's key is asked of ingest only when photos are opened, and forgotten at once.
"""

import hashlib
from dataclasses import dataclass
from uuid import UUID

from services.common.contracts import SubjectRef
from services.common.data_keys import DataKeys
from services.common.sealing import SubjectField, open_bytes
from services.common.storage import Blob, ObjectStore
from services.router.providers.identity_inputs import LOCAL_BASE

PREFIX = "identities"


class SubjectErased(Exception):
    """The subject's data key is gone: its photos can no longer be opened."""


@dataclass(frozen=True, slots=True)
class KeptWeights:
    key: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightsPlace:
    """Where an identity's weights are kept: whose, which identity, for which base."""

    tenant_id: str
    subject_id: UUID
    identity_id: UUID
    base: str

    @property
    def folder(self) -> str:
        return f"{PREFIX}/{self.tenant_id}/{self.subject_id}/{self.identity_id}"

    @property
    def key(self) -> str:
        return f"{self.folder}/weights.{'zip' if self.base == LOCAL_BASE else 'safetensors'}"

    @property
    def photos_key(self) -> str:
        """The photos' zip a trainer fetches by link (`images.via: presigned`), deleted once it ends."""
        return f"{self.folder}/photos.zip"


@dataclass(eq=False)
class SubjectFiles:
    objects: ObjectStore
    data_keys: DataKeys

    async def photos(self, subject: SubjectRef) -> tuple[bytes, ...]:
        """The subject's accepted photos in clear; SubjectErased once its key is gone."""
        try:
            key = await self.data_keys.subject_key(subject.subject_id)
        finally:
            self.data_keys.forget(subject.subject_id)
        if key is None:
            raise SubjectErased(f"subject {subject.subject_id} was erased")
        opened = []
        for photo in subject.photos:
            sealed = await self.objects.get(self.objects.internal_bucket, photo.key)
            clear = open_bytes(key, SubjectField(subject.subject_id, f"photo/{photo.sha256}"), sealed=sealed)
            if hashlib.sha256(clear).hexdigest() != photo.sha256:
                raise ValueError(f"photo {photo.key} of subject {subject.subject_id} is not the photo it names")
            opened.append(clear)
        return tuple(opened)

    async def keep_weights(self, place: WeightsPlace, data: bytes) -> KeptWeights:
        stored = await self.objects.put(self.objects.internal_bucket, place.key,
                                        content=Blob(data, "application/zip" if place.key.endswith(".zip")
                                             else "application/octet-stream"))
        return KeptWeights(stored.key, stored.sha256, stored.size_bytes)

    async def keep_photos(self, place: WeightsPlace, zipped: bytes) -> KeptWeights:
        stored = await self.objects.put(self.objects.internal_bucket, place.photos_key, content=Blob(zipped, "application/zip"))
        return KeptWeights(stored.key, stored.sha256, stored.size_bytes)

    async def weights(self, key: str) -> bytes:
        return await self.objects.get(self.objects.internal_bucket, key)

    def link(self, key: str, ttl_s: int) -> str:
        """A link a provider fetches the weights by (the object store's public endpoint, signed)."""
        return self.objects.presign_get(self.objects.internal_bucket, key, ttl_s=ttl_s)

    async def drop_weights(self, key: str) -> None:
        await self.objects.delete(self.objects.internal_bucket, key)
