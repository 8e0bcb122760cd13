"""Verify receipts by hand: any RFC 8785 (JSON canonicalization) and Ed25519 implementation
will do. The client only fetches here; the checks use the rfc8785 and cryptography packages."""

import base64
import hashlib
import json

import httpx
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genline_client import Genline


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


with Genline() as client:
    job = client.jobs.wait(client.jobs.create("a lantern on a jetty", tier="low-cost"))
    keys, receipts = client.signing_keys(), list(client.receipts())
    image = httpx.get(job.outputs[0].url).raise_for_status().content  # the image you were delivered

# 1. The keys: Ed25519 JWKs; each `kid` is the RFC 7638 thumbprint of its key, which you recompute.
public = {}
for jwk in keys["keys"]:
    members = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"))
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519") and b64url(hashlib.sha256(members.encode()).digest()) == jwk["kid"]
    public[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(unb64url(jwk["x"]))

# 2. Each receipt: canonical bytes of its body, their SHA-256, the signature over the same bytes.
previous = None
for document in sorted(receipts, key=lambda d: d["receipt"]["sequence"]):
    body, signature = document["receipt"], document["signature"]
    content = rfc8785.dumps(body)  # RFC 8785: sorted keys, no spaces, UTF-8
    assert body["format"] == "genline.receipt.v1" and signature["alg"] == "EdDSA"
    assert signature["kid"] == body["kid"]  # the body names the key it was signed with
    assert hashlib.sha256(content).hexdigest() == document["sha256"]
    public[signature["kid"]].verify(unb64url(signature["value"]), content)  # InvalidSignature if not

    # 3. The chain: sequences 1, 2, 3 …, each naming the SHA-256 of the one before.
    if previous is None:
        assert body["sequence"] == 1 and body["previous_sha256"] is None
    else:
        assert body["sequence"] == previous["receipt"]["sequence"] + 1
        assert body["previous_sha256"] == previous["sha256"]
    previous = document
print(f"{len(receipts)} receipts verified by hand, up to sequence {previous['receipt']['sequence']}")

# 4. The image you hold is the one the receipt lists.
mine = next(d["receipt"] for d in receipts if d["receipt"]["job_id"] == str(job.id))
assert hashlib.sha256(image).hexdigest() == mine["outputs"][0]["sha256"]
print(f"output 1 of job {job.id}: sha256 matches the receipt")
