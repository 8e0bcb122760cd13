"""Copies of a remote job's fetched outputs, kept where a resumed call finds them.

A provider's output URL does not live long (Replicate deletes API outputs after an hour,
OpenAI's image URLs last an hour, BFL signs samples for ten minutes, fal's CDN keeps files
for the time a request sets). A router that fetched a job's images and died before the
attempt stored them would find, on resume, a job whose URLs may have expired: so the
images are copied to the internal bucket as soon as they are fetched, before the job is
written down as succeeded, and a resumed call takes the copy instead of fetching again.

`BucketCopies` keeps them in the object store: one object per image, then a manifest
that names them, under `provider-outputs/{job}/{attempt}/…` (a copy without its manifest
is no copy, and the job is polled again).
"""

import json
from dataclasses import dataclass
from typing import Protocol

from services.common.storage import PROVIDER_COPIES, Blob, ObjectStore, StorageError
from services.router.providers.journal import RemoteJobKey

PREFIX = PROVIDER_COPIES  # delivery removes them: with the job's erasure, and by retention


@dataclass(frozen=True, slots=True)
class CopiedOutput:
    compute_s: float | None
    cost_micro_usd: int | None
    # (bytes, media type, reported seed) per image, in the job's order.
    images: tuple[tuple[bytes, str, int | None], ...]


class OutputCopies(Protocol):
    async def put(self, key: RemoteJobKey, output: CopiedOutput) -> None: ...

    async def get(self, key: RemoteJobKey) -> CopiedOutput | None: ...


class BucketCopies:
    """The copies in the internal bucket: the images first, then the manifest that names them."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    async def put(self, key: RemoteJobKey, output: CopiedOutput) -> None:
        bucket, prefix = self.objects.internal_bucket, copy_prefix(key)
        for n, (data, media_type, _) in enumerate(output.images):
            await self.objects.put(bucket, f"{prefix}{n}", content=Blob(data, media_type))
        manifest = {"compute_s": output.compute_s, "cost_micro_usd": output.cost_micro_usd,
                    "images": [{"media_type": media_type, "seed": seed} for _, media_type, seed in output.images]}
        await self.objects.put(bucket, f"{prefix}manifest.json", content=Blob(json.dumps(manifest).encode(), "application/json"))

    async def get(self, key: RemoteJobKey) -> CopiedOutput | None:
        bucket, prefix = self.objects.internal_bucket, copy_prefix(key)
        try:
            manifest = json.loads(await self.objects.get(bucket, f"{prefix}manifest.json"))
            images = [(await self.objects.get(bucket, f"{prefix}{n}"), image["media_type"], image["seed"])
                      for n, image in enumerate(manifest["images"])]
        except (StorageError, ValueError, KeyError, TypeError):
            return None  # no copy (or a partial one): the job is polled again
        return CopiedOutput(manifest["compute_s"], manifest["cost_micro_usd"], tuple(images))


def copy_prefix(key: RemoteJobKey) -> str:
    return (f"{PREFIX}/{key.job_id}/{key.attempt}/{key.capability}/{key.provider}/"
            f"{key.start_index}-{key.count}/")
