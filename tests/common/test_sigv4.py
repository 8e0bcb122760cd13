"""SigV4 signatures equal those of AWS's own worked examples (Amazon S3 API reference,
"Signature Calculations for the Authorization Header" and "Authenticating Requests: Using
Query Parameters"), and requests signed this way are served by the stack's S3."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx

from services.common.sigv4 import EMPTY_SHA256, Link, Request, SigV4Signer
from services.common.storage import Blob

EXAMPLE = SigV4Signer("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region="us-east-1")
MAY_24_2013 = datetime(2013, 5, 24, tzinfo=UTC)
HOST = "examplebucket.s3.amazonaws.com"


def test_a_get_with_a_range_is_signed_as_in_the_aws_example():
    headers = EXAMPLE.authorize(Request(method="GET", host=HOST, path="/test.txt", headers={"Range": "bytes=0-9"}, payload_sha256=EMPTY_SHA256), MAY_24_2013)
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        " SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
        " Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_a_presigned_link_is_signed_as_in_the_aws_example():
    url = EXAMPLE.presign(Link(endpoint=f"https://{HOST}", host=HOST, path="/test.txt"), 86400, now=MAY_24_2013)
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


def test_objects_round_trip_through_the_stack_s3_and_their_links_download(object_store):
    key = f"sigv4/{uuid.uuid4()}/a name with spaces+plus.png"
    data = uuid.uuid4().bytes * 100

    async def round_trip() -> bytes:
        stored = await object_store.put(object_store.internal_bucket, key, content=Blob(data, "image/png"))
        await object_store.copy(stored, object_store.internal_bucket, to_bucket=object_store.public_bucket)
        return await object_store.get(object_store.public_bucket, key)

    assert asyncio.run(round_trip()) == data
    response = httpx.get(object_store.presign_get(object_store.public_bucket, key, ttl_s=60))
    assert response.status_code == 200 and response.content == data
