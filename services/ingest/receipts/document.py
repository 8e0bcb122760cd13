"""Signed job receipts, without I/O: what a receipt says, and how it is signed.

When ingest first shows a job final (and so settled: a final view holds its settlement), it
issues the job's receipt in the same transaction as the JobFinished that announces it:

1. The body (`receipt_body`) says what the job was asked (template and scoring profile with
   their versions), what it produced (each delivered output's sha256, media type and size,
   the label of its C2PA manifest and its watermark's id, so that a file and its receipt
   lead to each other; a clip's duration, codec, frame rate and frame count; each candidate's
   verdict and failing dimensions), what it cost (credits reserved, charged and released with
   the price book's version, a video job's seconds charged, a job of a subject's training line;
   provider cost per stage), the subject it was of and its identity (provider, model and the
   weights' hash; never a photo), when it
   entered each state, and the hash of the tenant's previous receipt (`sequence` and
   `previous_sha256`: a chain per tenant). No prompt: a receipt outlives an erasure.
2. Its hash is the SHA-256 of its RFC 8785 canonical JSON; the Ed25519 signature covers the
   same bytes, under the key `kid` (the RFC 7638 thumbprint of the public key).
3. Anyone checks it offline with the keys of `GET /.well-known/genline-keys.json`
   (genline-client's `verify_receipt` and `verify_chain`).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, Field

from services.common.contracts import DeliveredImage
from services.ingest.jobs import JobView
from services.ingest.signing_key import b64url

FORMAT = "genline.receipt.v1"
ALGORITHM = "EdDSA"


# ---- the receipt's shape: what receipt_body builds, and what the API documents -------------


class ReceiptTemplate(BaseModel):
    name: str
    version: str | None = Field(description="the template catalogue's version at submission")


class ReceiptProfile(BaseModel):
    name: str | None
    version: str | None = Field(description="a digest of the profile's checks, the job's rules included")


class ReceiptImages(BaseModel):
    requested: int
    delivered: int


class ReceiptFailure(BaseModel):
    code: str
    stage: str


class ReceiptClip(BaseModel):
    """A delivered video clip as the file says: how long it plays, its codec, rate and frames."""

    duration_ms: int
    codec: str | None
    fps: float
    frames: int


class ReceiptOutput(BaseModel):
    n: int
    key: str = Field(description="the object in the public bucket")
    sha256: str = Field(description="of the delivered file, Content Credentials included")
    media_type: str
    size_bytes: int
    manifest_label: str | None = Field(None, description="the label of the file's C2PA manifest, which names this job")
    watermark_id: str | None = Field(None, description="the id its invisible watermark carries (hex)")
    clip: ReceiptClip | None = Field(None, description="a video clip's duration, codec, rate and frame count;"
                                                       " absent for images")


class ReceiptCandidate(BaseModel):
    index: int
    attempt: int
    provider: str
    sha256: str
    verdict: Literal["selected", "passed", "rejected"]
    failed: list[str] = Field(description="the dimensions that rejected it")


class ReceiptIdentity(BaseModel):
    """How the subject's identity was carried: trained weights (which provider and trainer made
    them, and their hash) or reference to its photos; never a photo."""

    mode: Literal["lora", "reference"]
    identity_id: str | None = None
    provider: str
    model: str
    weights_sha256: str | None = None


class ReceiptSubject(BaseModel):
    """The subject the job was of: its id, kind and name, and the photo set it was known by."""

    id: str
    kind: str
    name: str
    photo_set_sha256: str
    identity: ReceiptIdentity | None = Field(None, description="absent when the router never said (a job that ended"
                                                                " before generating)")


class ReceiptTraining(BaseModel):
    """The training line of a job of a subject: held, charged (the job trained the identity) and released."""

    reserved: int
    charged: int
    released: int


class ReceiptCredits(BaseModel):
    reserved: int
    charged: int
    released: int
    retry_tokens_used: int
    price_book_version: str | None
    seconds_charged: int | None = Field(None, description="a video job's delivered seconds charged; absent for"
                                                          " image jobs")
    training: ReceiptTraining | None = Field(None, description="a job of a subject: its training line; absent"
                                                               " when none was held")


class ReceiptStage(BaseModel):
    attempt: int
    stage_index: int
    stage: str
    provider: str
    calls: int
    cost_micro_usd: int
    refused_outputs: int = Field(0, description="outputs the provider made that were refused before scoring (in the"
                                                " cost, never scored)")


class ReceiptProviderCost(BaseModel):
    total_micro_usd: int
    stages: list[ReceiptStage]


class ReceiptBody(BaseModel):
    format: Literal["genline.receipt.v1"]
    kid: str = Field(description="the signing key: the RFC 7638 thumbprint of its public key")
    job_id: str
    tenant_id: str
    sequence: int = Field(ge=1, description="the receipt's place in the tenant's chain, from 1")
    previous_sha256: str | None = Field(description="the sha256 of the tenant's receipt before this one; null for the first")
    issued_at: str
    state: str
    failure: ReceiptFailure | None
    template: ReceiptTemplate
    profile: ReceiptProfile
    images: ReceiptImages
    outputs: list[ReceiptOutput]
    candidates: list[ReceiptCandidate]
    credits: ReceiptCredits
    provider_cost: ReceiptProviderCost
    times: dict[str, str] = Field(description="when the job entered each state, RFC 3339")
    metadata: dict[str, str] | None = Field(None, description="the job's labels, as submitted; absent when none")
    end_user: str | None = Field(None, description="the tenant's customer the job was for; absent when none")
    subject: ReceiptSubject | None = Field(None, description="the person or product the job was of, and its"
                                                             " identity; absent for a job of none")


class ReceiptSignature(BaseModel):
    alg: Literal["EdDSA"]
    kid: str
    value: str = Field(description="base64url Ed25519 signature of the receipt's RFC 8785 canonical JSON")


class SignedReceipt(BaseModel):
    receipt: ReceiptBody
    sha256: str = Field(description="SHA-256 (hex) of the receipt's RFC 8785 canonical JSON")
    signature: ReceiptSignature



# The client verifies receipts with the same three helpers (genline_client/receipts.py); ingest
# keeps its own copy because its image does not install the client, which ships alone.
def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON."""
    return rfc8785.dumps(value)


def receipt_sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def key_id(public_key: bytes) -> str:
    """The RFC 7638 thumbprint of the Ed25519 public key's JWK."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key)}
    return b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def jwk(public_key: bytes, **extra: Any) -> dict[str, Any]:
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(public_key), "kid": key_id(public_key), "alg": ALGORITHM,
            "use": "sig"} | extra


class ReceiptSigner:
    """Signs receipt bodies with one key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key
        self.public_key = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.kid = key_id(self.public_key)

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        """The receipt as clients get it: the body, its hash, and the signature of its canonical bytes."""
        content = canonical(body)
        return {"receipt": body, "sha256": hashlib.sha256(content).hexdigest(),
                "signature": {"alg": ALGORITHM, "kid": self.kid, "value": b64url(self.key.sign(content))}}


def _json(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


@dataclass(frozen=True, kw_only=True)
class ReceiptStamp:
    """What a receipt says of its own issue: its place in the tenant's chain (its sequence and
    the previous receipt's hash, None for the first), the key that signs it, and when."""

    sequence: int
    previous_sha256: str | None
    kid: str
    issued_at: datetime


def receipt_body(view: JobView, stamp: ReceiptStamp) -> dict[str, Any]:
    """What the receipt of a job shown final says (see the module's docstring), as JSON."""
    selected = set(view.selected)
    billing = view.billing
    return ReceiptBody(
        format=FORMAT, kid=stamp.kid, job_id=str(view.id), tenant_id=view.tenant_id, sequence=stamp.sequence,
        previous_sha256=stamp.previous_sha256, issued_at=_json(stamp.issued_at), state=view.state,
        failure=ReceiptFailure(code=view.failure.code, stage=view.failure.stage) if view.failure else None,
        template=ReceiptTemplate(name=view.template, version=view.template_version),
        profile=ReceiptProfile(name=view.scoring_profile, version=view.profile_version),
        images=ReceiptImages(requested=view.images, delivered=len(view.outputs)),
        outputs=[ReceiptOutput(n=o.n, key=o.key, sha256=o.sha256, media_type=o.media_type, size_bytes=o.size_bytes,
                               manifest_label=o.manifest_label, watermark_id=o.watermark_id, clip=receipt_clip(o))
                 for o in view.outputs],
        candidates=[ReceiptCandidate(index=s.index, attempt=s.attempt, provider=s.provider, sha256=s.sha256,
                                     verdict="selected" if s.index in selected else "passed" if s.passed else "rejected",
                                     failed=list(s.failed)) for s in view.scores],
        credits=ReceiptCredits(reserved=billing.reserved or 0, charged=billing.charged or 0,
                               released=billing.released or 0, retry_tokens_used=billing.retry_tokens_used,
                               price_book_version=billing.price_book_version,
                               seconds_charged=billing.seconds_charged, training=receipt_training(view)),
        provider_cost=ReceiptProviderCost(
            total_micro_usd=view.provider_cost_micro_usd,
            stages=[ReceiptStage(attempt=s.attempt, stage_index=s.stage_index, stage=s.stage, provider=s.provider,
                                 calls=s.calls, cost_micro_usd=s.cost_micro_usd, refused_outputs=s.refused_outputs)
                    for s in view.stages]),
        times={state: _json(at) for state, at in sorted(view.timestamps.items(), key=lambda item: item[1])},
        metadata=view.metadata, end_user=view.end_user, subject=receipt_subject(view),
    ).model_dump(mode="json", exclude=absent_parts(view))


def receipt_subject(view: JobView) -> ReceiptSubject | None:
    subject = view.subject
    if subject is None:
        return None
    use = subject.identity
    identity = ReceiptIdentity(mode=use.mode, identity_id=str(use.identity_id) if use.identity_id else None,
                               provider=use.provider, model=use.model,
                               weights_sha256=use.weights_sha256) if use is not None else None
    return ReceiptSubject(id=str(subject.id), kind=subject.kind, name=subject.name,
                          photo_set_sha256=subject.photo_set_sha256, identity=identity)


def receipt_training(view: JobView) -> ReceiptTraining | None:
    line = view.billing.training
    if line is None:
        return None
    return ReceiptTraining(reserved=line.reserved, charged=line.charged or 0, released=line.released or 0)


# A receipt names these only when the job had them, so receipts of jobs without them read as before.
ATTRIBUTION = ("metadata", "end_user")


def receipt_clip(output: DeliveredImage) -> ReceiptClip | None:
    if not output.media_type.startswith("video/"):
        return None
    return ReceiptClip(duration_ms=output.duration_ms, codec=output.codec, fps=output.fps, frames=output.frames)


def absent_parts(view: JobView) -> dict[str, Any]:
    """What a receipt leaves out because the job had none of it (labels, clips, seconds), so the
    receipts of jobs without them read, and hash, as before."""
    absent: dict[str, Any] = {name: True for name in ATTRIBUTION if getattr(view, name) is None}
    stills = {i: {"clip"} for i, output in enumerate(view.outputs) if receipt_clip(output) is None}
    if stills:
        absent["outputs"] = stills
    absent["credits"] = {name for name, missing in (("seconds_charged", view.billing.seconds_charged is None),
                                                    ("training", view.billing.training is None)) if missing}
    if not absent["credits"]:
        del absent["credits"]
    if view.subject is None:
        absent["subject"] = True
    elif view.subject.identity is None:
        absent["subject"] = {"identity"}
    return absent
