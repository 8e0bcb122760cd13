"""Object storage (S3 or any S3-compatible store) for candidates and delivered images.

Two buckets: internal (every candidate) and public (delivered images, reached through
presigned links that expire). boto3 is blocking, so calls run in worker threads.
"""

import asyncio
import hashlib
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from services.common import telemetry
from services.common.settings import ServiceSettings

MAX_LINK_TTL_S = 7 * 24 * 3600  # SigV4 presigned URLs cannot live longer


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    sha256: str
    media_type: str


def _client(settings: ServiceSettings, endpoint_url: str | None):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


class ObjectStore:
    def __init__(self, settings: ServiceSettings) -> None:
        self.internal_bucket = settings.internal_bucket
        self.public_bucket = settings.public_bucket
        self._s3 = _client(settings, settings.s3_endpoint_url)
        self._signer = _client(settings, settings.s3_public_endpoint_url or settings.s3_endpoint_url)
        for counter in (telemetry.STORED_BYTES, telemetry.STORED_OBJECTS):
            telemetry.preinitialise(counter, (self.internal_bucket,), (self.public_bucket,))

    async def put(self, bucket: str, key: str, data: bytes, media_type: str) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(
            self._s3.put_object, Bucket=bucket, Key=key, Body=data, ContentType=media_type,
            Metadata={"sha256": digest},
        )
        self._count_stored(bucket, len(data))
        return StoredObject(key, len(data), digest, media_type)

    async def get(self, bucket: str, key: str) -> bytes:
        response = await asyncio.to_thread(self._s3.get_object, Bucket=bucket, Key=key)
        return await asyncio.to_thread(response["Body"].read)

    async def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, size_bytes: int) -> None:
        """`size_bytes` is the object's known size, counted as stored in the destination."""
        source = {"Bucket": src_bucket, "Key": src_key}
        await asyncio.to_thread(self._s3.copy_object, CopySource=source, Bucket=dst_bucket, Key=dst_key)
        self._count_stored(dst_bucket, size_bytes)

    @staticmethod
    def _count_stored(bucket: str, size_bytes: int) -> None:
        telemetry.STORED_BYTES.labels(bucket).inc(size_bytes)
        telemetry.STORED_OBJECTS.labels(bucket).inc()

    def presign_get(self, bucket: str, key: str, ttl_s: int) -> str:
        ttl_s = max(1, min(ttl_s, MAX_LINK_TTL_S))
        return self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s
        )

    async def ensure_buckets(self) -> None:
        for bucket in (self.internal_bucket, self.public_bucket):
            try:
                await asyncio.to_thread(self._s3.head_bucket, Bucket=bucket)
            except ClientError:
                await asyncio.to_thread(self._s3.create_bucket, Bucket=bucket)

    async def ping(self) -> None:
        await asyncio.to_thread(self._s3.head_bucket, Bucket=self.internal_bucket)
