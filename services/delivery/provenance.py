"""Provenance, the last step of delivery: every delivered image gets an invisible watermark
and then signed Content Credentials (C2PA), after every other change to its bytes, since
any later re-encode would break the signature.

* The watermark (`services.common.watermark`) carries the delivery's mark id, 48 bits of
  the hash of (job, n): the same for a redelivered event, and what `POST /v1/verify` looks
  up when the metadata was stripped. Embedding changes pixels, so the image is encoded again
  in its format at the template's quality (PNG stays lossless). A clip (an animated WebP)
  and an image under 64 pixels a side are signed without a watermark. A video clip's frames
  are not marked, its poster is: marking frames would re-encode every clip, which delivery
  otherwise only remuxes, and the codec's quantizing of the chroma the mark lives in is a
  second lossy step the mark was not sized for; the clip itself is bound to (job, n) by its
  signed manifest, and its poster (the frame people share) by the mark.
* The manifest: a `c2pa.actions` assertion whose first action is `c2pa.created` with the
  IPTC digital source type `trainedAlgorithmicMedia`, Genline as the software agent, the
  provider and the model with its pinned version, the creation time and the delivery's id; the `com.genline.job` assertion
  (job, n, mark id, receipt path, and the SHA-256 of the bytes as they were before the
  manifest was embedded: the delivered file's own hash cannot be inside it, so the receipt
  records that one, with the manifest's label); the provider's own manifest as an
  ingredient when the candidate carried one. The label is derived from (job, n), so the
  receipt and a redelivery name the same manifest.
* Signed with the deployment's certificate (`load_signing_credentials`): its key from a
  Secret (`GENLINE_PROVENANCE_SIGNING_KEY`), or wrapped under a key-encryption key in a key
  file (the embedded stack's); an RFC 3161 timestamp when `GENLINE_PROVENANCE_TSA_URL` is set.
"""

import base64
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import c2pa
import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image

from services.common import watermark
from services.common.provenance import (
    JOB_ASSERTION,
    SIGNABLE,
    TRAINED_ALGORITHMIC_MEDIA,
    SigningCredentials,
    sniffed_media_type,
)
from services.delivery.postprocess import PIL_FORMATS, Delivered, Rendered, encoded, has_alpha
from services.delivery.settings import DeliverySettings

log = logging.getLogger(__name__)
SOFTWARE_AGENT = {"name": "Genline", "version": "0.1.0"}
WRAP_AAD = b"genline/provenance-signing-key/v1"
# A poster is small (256 pixels on its longer side in the video templates): at WebP quality
# 80, as thumbnails are written, the mark read back from 17 of 20 posters; at 90, from 100 of 100.
MARKED_POSTER_QUALITY = 90


@dataclass(frozen=True)
class Origin:
    """What the credentials say of one delivered image, and the candidate it was made from
    (`source`, as the provider made it: its own manifest is kept as an ingredient)."""

    job_id: UUID
    n: int
    provider: str
    template: str | None
    created_at: datetime
    source: bytes = field(repr=False)
    model: str = ""
    model_version: str = ""


def mark_id(job_id: UUID, n: int) -> int:
    """The delivery's 48-bit watermark id: the same for the same job and image, whoever delivers it."""
    return int.from_bytes(hashlib.sha256(f"genline:{job_id}:{n}".encode()).digest()[:6], "big")


def mark_hex(value: int) -> str:
    return f"{value:012x}"


def manifest_label(job_id: UUID, n: int) -> str:
    """`urn:c2pa:<uuid>`, the uuid derived from (job, n) and shaped as version 4, the only
    version C2PA takes."""
    digest = hashlib.sha256(f"genline:manifest:{job_id}:{n}".encode()).digest()
    return f"urn:c2pa:{UUID(bytes=digest[:16], version=4)}"


# ---- keys ---------------------------------------------------------------------------------


def wrap_signing_key(key_pem: str, kek_file: Path) -> dict[str, str]:
    """The signing key sealed (AES-256-GCM) under the key file's active key-encryption key,
    as the key file JSON `{"kek_id", "wrapped"}` that `GENLINE_PROVENANCE_SIGNING_KEY_FILE` names."""
    kek_id, kek = _kek(kek_file, None)
    nonce = os.urandom(12)
    return {"kek_id": kek_id, "wrapped": base64.b64encode(nonce + AESGCM(kek).encrypt(nonce, key_pem.encode(),
                                                                                       WRAP_AAD)).decode()}


def unwrap_signing_key(document: dict[str, str], kek_file: Path) -> str:
    _, kek = _kek(kek_file, document["kek_id"])
    sealed = base64.b64decode(document["wrapped"])
    return AESGCM(kek).decrypt(sealed[:12], sealed[12:], WRAP_AAD).decode()


def _kek(kek_file: Path, kek_id: str | None) -> tuple[str, bytes]:
    """A key-encryption key of a key file (`{"active": ID, "keys": {ID: base64}}`, the format
    of ingest's data-key KEKs): the one named, or the active one."""
    document = json.loads(kek_file.read_text())
    chosen = kek_id or document["active"]
    return chosen, base64.b64decode(document["keys"][chosen])


def load_signing_credentials(settings: DeliverySettings) -> SigningCredentials | None:
    """The deployment's certificate chain and key as the settings name them; None when none
    is configured (development and tests only: settings refuse that in production)."""
    chain = settings.provenance_certificate_chain
    if settings.provenance_certificate_chain_file:
        chain = Path(settings.provenance_certificate_chain_file).read_text()
    if not chain:
        return None
    if settings.provenance_signing_key is not None:
        key = settings.provenance_signing_key.get_secret_value()
    else:
        assert settings.provenance_signing_key_file and settings.provenance_kek_file  # settings check both
        document = json.loads(Path(settings.provenance_signing_key_file).read_text())
        key = unwrap_signing_key(document, Path(settings.provenance_kek_file))
    return SigningCredentials(key_pem=key, chain_pem=chain, anchor_pem="")


# ---- marking ------------------------------------------------------------------------------------


class Marker:
    """Watermarks and signs delivered images with one deployment's credentials."""

    def __init__(self, credentials: SigningCredentials, tsa_url: str | None = None) -> None:
        self.credentials, self.tsa_url = credentials, tsa_url
        self.algorithm = b"ed25519" if "ED25519" in credentials.key_pem.upper() else b"es256"

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> "Marker":
        credentials = load_signing_credentials(settings)
        if credentials is None:
            from services.common.provenance import new_signing_credentials

            log.warning("no Content Credentials certificate configured: images are signed with a CA made for this"
                        " process, which no verifier trusts (GENLINE_PROVENANCE_CERTIFICATE_CHAIN)")
            credentials = new_signing_credentials(f"{settings.service_name} (ephemeral)")
        return cls(credentials, settings.provenance_tsa_url)

    def mark(self, done: Delivered, origin: Origin, quality: int) -> Delivered:
        """`done` with its image watermarked (re-encoded at `quality`) and signed, and the mark
        id and manifest label set."""
        image = done.image
        if image.media_type not in SIGNABLE:
            return done
        identity = mark_id(origin.job_id, origin.n)
        marked = watermarked(image, identity, quality)
        label = manifest_label(origin.job_id, origin.n)
        signed = self.sign(marked, self.manifest(origin, marked), origin.source)
        if image.media_type.startswith("video/"):  # a clip's frames stay as they are; its poster carries the mark
            poster = watermarked(done.thumbnail, identity, MARKED_POSTER_QUALITY)
            return replace(done, image=replace(image, data=signed), thumbnail=poster, manifest_label=label,
                           watermark_id=mark_hex(identity) if poster is not done.thumbnail else None)
        return replace(done, image=replace(marked, data=signed), manifest_label=label,
                       watermark_id=mark_hex(identity) if marked is not image else None)

    def manifest(self, origin: Origin, marked: Rendered) -> dict[str, Any]:
        created = origin.created_at.isoformat().replace("+00:00", "Z")
        identity = mark_id(origin.job_id, origin.n)
        return {
            "label": manifest_label(origin.job_id, origin.n),
            "title": f"{origin.n}.{marked.media_type.rsplit('/', 1)[1]}",
            "claim_generator_info": [SOFTWARE_AGENT],
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": SOFTWARE_AGENT, "when": created,
                    "parameters": {"provider": origin.provider, "model": origin.model,
                                   "model_version": origin.model_version, "template": origin.template,
                                   "delivery_id": mark_hex(identity)}}]}},
                {"label": JOB_ASSERTION, "data": {
                    "job_id": str(origin.job_id), "n": origin.n, "delivery_id": mark_hex(identity),
                    "created_at": created, "receipt": f"/v1/jobs/{origin.job_id}/receipt",
                    "unsigned_sha256": hashlib.sha256(marked.data).hexdigest()}},
            ],
        }

    def sign(self, image: Rendered, manifest: dict[str, Any], source: bytes) -> bytes:
        """`image`'s bytes with `manifest` embedded and signed; `source` its ingredient when it
        carries Content Credentials of its own."""
        info = c2pa.C2paSignerInfo(self.algorithm, self.credentials.chain_pem.encode(),
                                   self.credentials.key_pem.encode(),
                                   self.tsa_url.encode() if self.tsa_url else None)
        # The manifest holds no thumbnail: the delivered image is its own, and one would add
        # tens of kilobytes to every file. A context per call: images are signed in threads.
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest, context=context) as builder:
            source_type = signed_source_type(source)
            if source_type is not None:  # the provider signed its output: keep its manifest as our ingredient
                builder.add_ingredient({"title": "provider output", "relationship": "parentOf"}, source_type,
                                       io.BytesIO(source))
            out = io.BytesIO()
            builder.sign(signer, image.media_type, io.BytesIO(image.data), out)
        return out.getvalue()


def signed_source_type(source: bytes) -> str | None:
    """The media type of a candidate that carries Content Credentials of its own, else None."""
    media_type = sniffed_media_type(source)
    if media_type is None:
        return None
    try:
        with c2pa.Reader(media_type, io.BytesIO(source)):
            return media_type
    except c2pa.C2paError:
        return None


def watermarked(image: Rendered, identity: int, quality: int) -> Rendered:
    """`image` with the mark embedded, encoded again in its format; as it is when it cannot
    carry one (a clip, a tiny image, a video)."""
    if image.frames > 1 or not image.media_type.startswith("image/") \
            or not watermark.can_carry(image.width, image.height):
        return image
    with Image.open(io.BytesIO(image.data)) as opened:
        opened.load()
        alpha = opened.getchannel("A") if has_alpha(opened) and opened.mode in ("RGBA", "LA") else None
        pixels = watermark.embed(np.asarray(opened.convert("RGB")), identity)
    marked = Image.fromarray(pixels)
    if alpha is not None:
        marked.putalpha(alpha)
    pil_format = PIL_FORMATS[image.media_type.rsplit("/", 1)[1]]
    return encoded(marked, pil_format, quality)
