"""What a file proves (`POST /v1/verify`, `genline verify`): its Content Credentials read and
validated against the deployment's trust anchor, its invisible watermark read where the
credentials are gone, and the delivered output either one leads to.

The answer says only what can be shown:

* `generated_here`: a manifest that chains to this deployment's anchor (Trusted) names one
  of its delivered outputs, or the file's watermark carries the id of one (which holds
  after the metadata was stripped, the file re-encoded, resized or cropped);
* `intact`: the file is byte for byte the output as delivered (its SHA-256 is the one the
  job's receipt records); False when it is not (a pixel changed, re-encoded, cropped);
  None when no output was found;
* `recovered`: for a file found by its watermark, what the delivered file's own manifest
  claimed (provider, model, creation time, its soft binding...), recovered from the
  deployment's records of the delivery, since the file no longer carries it: the watermark
  is the manifest's declared soft binding, the records the manifest repository;
* the job and its receipt only to the tenant that owns it (a caller with its API key).

The watermark is read from a still image, from up to `FRAMES_READ` frames of an animated WebP
or an MP4 together (then frame by frame, the first clearest), and, where the tiled mark is not
found, as the mark files delivered before it carried (`watermark_dwt`).
"""

import asyncio
import base64
import hashlib
import io
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from services.common import video, watermark, watermark_dwt
from services.common.db import Pool
from services.common.provenance import TRAINED_ALGORITHMIC_MEDIA, ManifestReading, read_manifest, sniffed_media_type
from services.ingest.jobs import job_with_output

# Larger images are not searched for a watermark: decoding them would cost more memory than
# an anonymous request may.
MAX_WATERMARK_PIXELS = 40_000_000
# A clip's or an animation's frames read for its watermark (evenly over it), at most this large.
FRAMES_READ, FRAME_SIDE = 16, 640
# Of those, the ones read alone where together they name no mark: a platform's re-encode may
# leave the mark clear in its key frames only.
FRAMES_READ_ALONE = 4


@dataclass(frozen=True, kw_only=True)
class Found:
    """The delivered output a file was traced to, and how."""

    job_id: str
    tenant_id: str
    output: dict[str, Any]
    by: str  # content_credentials | watermark


@dataclass(frozen=True, kw_only=True)
class Verification:
    media_type: str
    sha256: str
    manifest: ManifestReading
    mark: watermark.Detection | None
    found: Found | None

    @property
    def generated_here(self) -> bool:
        if self.found is None:
            return False
        return self.found.by == "watermark" or self.manifest.state == "Trusted"

    @property
    def intact(self) -> bool | None:
        return None if self.found is None else self.found.output.get("sha256") == self.sha256

    @property
    def recovered(self) -> dict[str, Any] | None:
        """The delivered file's manifest claims, recovered from the records, for a file found by
        its watermark; None where the file's own manifest was read, or nothing was found."""
        if self.found is None or self.found.by != "watermark":
            return None
        output = self.found.output
        return {"manifest_label": output.get("manifest_label"), "delivery_id": output.get("watermark_id"),
                "claims": output.get("claims")}

    @property
    def ai_generated(self) -> bool:
        declared = self.manifest.state in ("Trusted", "Valid") and self.manifest.source_type == TRAINED_ALGORITHMIC_MEDIA
        return declared or self.generated_here

    def summary(self) -> str:
        if self.found is None:
            if self.manifest.present:
                return (f"Content Credentials ({self.manifest.state}) that name no image delivered by this deployment"
                        + ("; they declare the file AI-generated" if self.ai_generated else ""))
            return "no Content Credentials and no watermark of this deployment: nothing here ties it to a delivery"
        if not self.generated_here:
            return "Content Credentials that name a delivery of this deployment, but not signed under its trust anchor"
        how = "its Content Credentials, signed by this deployment"
        if self.found.by == "watermark":
            how = "its invisible watermark (" + ("its Content Credentials no longer match the file)"
                                                 if self.manifest.present else "the Content Credentials are gone)")
        state = "intact: byte for byte as delivered" if self.intact else "altered since it was delivered"
        recovered = ("; the delivered file's Content Credentials were recovered from this deployment's records, not"
                     " read from this file" if self.found.by == "watermark" else "")
        return f"AI-generated by this deployment, shown by {how}; {state}{recovered}"


def media_type_of(data: bytes) -> str | None:
    return sniffed_media_type(data)


def detected_marks(data: bytes, media_type: str) -> list[watermark.Detection]:
    """The watermark of an image, an animation or a clip (nothing when the file is none it can
    search); for a still in which the tiled mark names no id, also the earlier method's reading,
    which counts only if its id names a delivery (its check is weaker)."""
    try:
        if media_type.startswith("video/"):
            return [read_frames(clip_frames(data))]
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_WATERMARK_PIXELS:
                return []
            if getattr(opened, "n_frames", 1) > 1:
                return [read_frames([np.asarray(frame.convert("RGB"))
                                     for frame in itertools.islice(ImageSequence.Iterator(opened), FRAMES_READ)])]
            pixels = np.asarray(opened.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, video.ClipError):
        return []
    found = watermark.detect(pixels)
    if found.mark_id is not None:
        return [found]
    earlier = watermark_dwt.detect(pixels)  # a file delivered before the tiled mark
    return [found, watermark.Detection(earlier.mark_id, watermark.MIN_STRENGTH + 6 * earlier.confidence)]


def clip_frames(data: bytes) -> list[np.ndarray]:
    """Up to FRAMES_READ frames spread evenly over a clip, at most FRAME_SIDE pixels a side."""
    total = video.probe(data).frames
    sampling = video.Sampling(every=max(1, total // FRAMES_READ), limit=FRAMES_READ, max_side=FRAME_SIDE)
    return [frame.rgb for frame in video.frames(data, sampling)]


def read_frames(frames: list[np.ndarray]) -> watermark.Detection:
    """The mark of frames read together, else of the first few read alone."""
    found = watermark.detect_frames(frames)
    for frame in frames[:FRAMES_READ_ALONE] if found.mark_id is None else ():
        alone = watermark.detect(frame)
        if alone.mark_id is not None:
            return alone
    return found


@dataclass(frozen=True)
class SentFile:
    """A file sent to be verified, and its media type as read from its content."""

    data: bytes = field(repr=False)
    media_type: str


async def verify(evidence: SentFile, anchors_pem: str | None, *, pool: Pool) -> Verification:
    """Read the file's manifest (and its watermark, where the manifest leads nowhere), and
    find the delivered output they name."""
    data, media_type = evidence.data, evidence.media_type
    sha256 = hashlib.sha256(data).hexdigest()
    manifest = await asyncio.to_thread(read_manifest, data, media_type, anchors_pem=anchors_pem)
    found, mark = None, None
    async with pool.connection() as conn:
        if manifest.label:
            row = await job_with_output(conn, manifest_label=manifest.label)
            found = Found(job_id=str(row[0]), tenant_id=row[1], output=row[2], by="content_credentials") if row else None
        if found is None or manifest.state != "Trusted":
            readings = await asyncio.to_thread(detected_marks, data, media_type)
            mark = readings[0] if readings else None
            for reading in readings:
                if reading.mark_id is None:
                    continue
                row = await job_with_output(conn, watermark_id=watermark.mark_hex(reading.mark_id))
                if row:
                    found, mark = Found(job_id=str(row[0]), tenant_id=row[1], output=row[2], by="watermark"), reading
                    break
    return Verification(media_type=media_type, sha256=sha256, manifest=manifest, mark=mark, found=found)


# ---- soft-binding resolution: a copy's mark id to its manifest's public claims ----------------

# The soft bindings delivered manifests declare, newest first: what the resolution API answers
# for. (Files delivered before manifests declared one carried the DWT mark, which verify still
# reads but no manifest names.)
SOFT_BINDING_ALGORITHMS = tuple(scheme.algorithm for scheme in watermark.SCHEMES)
MARK_ID_BYTES = watermark.MARK_ID_BITS // 8


class UnresolvableBinding(ValueError):
    """A soft binding the resolution API cannot look up: an algorithm it does not know, or a
    value that is not a mark id."""


def binding_mark_id(alg: str, value: str) -> str:
    """The mark id (hex) a soft binding's value carries: its 6 bytes, base64, as delivered
    manifests' `c2pa.soft-binding` blocks hold it."""
    if alg not in SOFT_BINDING_ALGORITHMS:
        raise UnresolvableBinding(f"unknown soft-binding algorithm {alg!r}: this deployment resolves"
                                  f" {', '.join(SOFT_BINDING_ALGORITHMS)}")
    # A '+' sent unencoded in a query string arrives as a space; the URL-safe alphabet and
    # missing padding are taken too, as they name the same bytes.
    text = value.replace(" ", "+").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError as error:
        raise UnresolvableBinding(f"the value is not base64: {error}") from error
    if len(raw) != MARK_ID_BYTES:
        raise UnresolvableBinding(f"the value is {len(raw)} bytes; {alg} carries a {MARK_ID_BYTES}-byte mark id")
    return raw.hex()


def declares(output: dict[str, Any], alg: str) -> bool:
    """Whether a delivered output's manifest declared the soft binding `alg`: the algorithm its
    claims record, or, for an output delivered before claims were kept, any of ours."""
    claims = output.get("claims")
    return claims is None or claims.get("soft_binding") == alg


async def manifests_by_binding(alg: str, value: str, *, pool: Pool) -> list[str]:
    """The labels of the delivered manifests whose soft binding is (`alg`, `value`): at most
    one, as a mark id names one delivery."""
    mark_hex = binding_mark_id(alg, value)
    async with pool.connection() as conn:
        row = await job_with_output(conn, watermark_id=mark_hex)
    if row is None or not declares(row[2], alg) or not row[2].get("manifest_label"):
        return []
    return [row[2]["manifest_label"]]


@dataclass(frozen=True, kw_only=True)
class PublicManifest:
    """What anyone may learn of a delivered file's manifest by its label: its claims as signed,
    its soft binding, and nothing of the tenant or the job it was made for."""

    label: str
    claims: dict[str, Any]
    soft_binding: tuple[str, str] | None  # (alg, base64 value)


PUBLIC_CLAIMS = ("digital_source_type", "software_agent", "created_at", "provider", "model", "model_version")


async def public_manifest(label: str, *, pool: Pool) -> PublicManifest | None:
    async with pool.connection() as conn:
        row = await job_with_output(conn, manifest_label=label)
    if row is None:
        return None
    output = row[2]
    claims = output.get("claims") or {}
    mark_hex, alg = output.get("watermark_id"), claims.get("soft_binding")
    binding = (alg, base64.b64encode(bytes.fromhex(mark_hex)).decode()) if mark_hex and alg else None
    return PublicManifest(label=label, claims={name: claims.get(name) for name in PUBLIC_CLAIMS}, soft_binding=binding)
