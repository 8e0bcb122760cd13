"""Provenance, the last step of delivery: every delivered image and clip gets signed Content
Credentials (C2PA), after every other change to its bytes, since any later re-encode would
break the signature.

* The invisible watermark (`services.common.watermark`), drawn by post-processing into the
  image, every frame of a clip or animation, and the thumbnail or poster, carries the
  delivery's mark id, 48 bits of the hash of (job, n): the same for a redelivered event, and
  what `POST /v1/verify` looks up when the metadata was stripped.
* The manifest: a `c2pa.actions` assertion whose first action is `c2pa.created` with the
  IPTC digital source type `trainedAlgorithmicMedia`, Genline as the software agent, the
  provider and the model with its pinned version, the creation time and the delivery's id;
  the `com.genline.job` assertion (job, n, mark id, receipt path, and the SHA-256 of the bytes
  as they were before the manifest was embedded: the delivered file's own hash cannot be
  inside it, so the receipt records that one, with the manifest's label); where the file
  carries the watermark, a `c2pa.soft-binding` assertion that declares it (the algorithm, and
  the mark id as its value, over the whole image or the clip's whole length), so that a copy
  whose manifest was stripped leads back to this one through the deployment's records; the
  provider's own manifest as an ingredient when the candidate carried one. The label is
  derived from (job, n), so the receipt and a redelivery name the same manifest.
* `claims` is what a manifest says, as delivery records it with the delivered output
  (`DeliveredImage.claims`): what `POST /v1/verify` recovers for a stripped copy.
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
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import c2pa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.common import watermark
from services.common.contracts import ManifestClaims
from services.common.provenance import (
    JOB_ASSERTION,
    SIGNABLE,
    TRAINED_ALGORITHMIC_MEDIA,
    SigningCredentials,
    sniffed_media_type,
)
from services.common.releases import RELEASE
from services.delivery.postprocess import Rendered, RenderedFiles
from services.delivery.settings import DeliverySettings

log = logging.getLogger(__name__)
SOFTWARE_AGENT = {"name": "Genline", "version": RELEASE}
WRAP_AAD = b"genline/provenance-signing-key/v1"
SOFT_BINDING = "c2pa.soft-binding"


@dataclass(frozen=True, kw_only=True)
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


mark_hex = watermark.mark_hex


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
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: DeliverySettings) -> "Marker":
        credentials = load_signing_credentials(settings)
        if credentials is None:
            from services.common.provenance import new_signing_credentials

            log.warning("no Content Credentials certificate configured: images are signed with a CA made for this"
                        " process, which no verifier trusts (GENLINE_PROVENANCE_CERTIFICATE_CHAIN)")
            credentials = new_signing_credentials(f"{settings.service_name} (ephemeral)")
        return cls(credentials, settings.provenance_tsa_url)

    def mark(self, done: RenderedFiles, origin: Origin) -> RenderedFiles:
        """`done` signed, with its manifest's label set; as it is when its format takes no manifest."""
        image = done.image
        if image.media_type not in SIGNABLE:
            return done
        signed = self.sign(image, manifest(origin, done), source=origin.source)
        return replace(done, image=replace(image, data=signed), manifest_label=manifest_label(origin.job_id, origin.n),
                       claims=claims(origin, done))

    def sign(self, image: Rendered, manifest: dict[str, Any], *, source: bytes) -> bytes:
        """`image`'s bytes with `manifest` embedded and signed; `source` its ingredient when it
        carries Content Credentials of its own."""
        signer, context = self._signing()
        with c2pa.Builder(manifest, context=context) as builder:
            source_type = signed_source_type(source)
            if source_type is not None:  # the provider signed its output: keep its manifest as our ingredient
                builder.add_ingredient({"title": "provider output", "relationship": "parentOf"}, source_type,
                                       io.BytesIO(source))
            out = io.BytesIO()
            builder.sign(signer, image.media_type, io.BytesIO(image.data), out)
        return out.getvalue()

    def _signing(self) -> tuple[c2pa.Signer, c2pa.Context]:
        """This thread's signer and builder context, made at its first signature and kept: the
        SDK's objects stay in the thread that made them (images are signed in threads), and
        making both for every file was a third of a 128-pixel image's signature (2.0 -> 1.4 ms
        of CPU). The manifest holds no thumbnail: the delivered image is its own, and one would
        add tens of kilobytes to every file."""
        made = getattr(self._local, "signing", None)
        if made is None:
            info = c2pa.C2paSignerInfo(self.algorithm, self.credentials.chain_pem.encode(),
                                       self.credentials.key_pem.encode(),
                                       self.tsa_url.encode() if self.tsa_url else None)
            made = self._local.signing = (c2pa.Signer.from_info(info),
                                          c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}))
        signing: tuple[c2pa.Signer, c2pa.Context] = made
        return signing


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


def claims(origin: Origin, done: RenderedFiles) -> ManifestClaims:
    """What the manifest of a delivered file claims beyond its job, number and mark id."""
    return ManifestClaims(digital_source_type=TRAINED_ALGORITHMIC_MEDIA, software_agent=SOFTWARE_AGENT["name"],
                          created_at=origin.created_at.isoformat().replace("+00:00", "Z"), provider=origin.provider,
                          model=origin.model, model_version=origin.model_version, template=origin.template,
                          soft_binding=watermark.ALGORITHM if done.watermark_id else None)


def manifest(origin: Origin, done: RenderedFiles) -> dict[str, Any]:
    """The manifest definition of a delivered file, as the C2PA SDK's builder takes it."""
    said, delivery_id = claims(origin, done), mark_hex(mark_id(origin.job_id, origin.n))
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions", "data": {"actions": [{
            "action": "c2pa.created", "digitalSourceType": said.digital_source_type,
            "softwareAgent": SOFTWARE_AGENT, "when": said.created_at,
            "parameters": {"provider": said.provider, "model": said.model, "model_version": said.model_version,
                           "template": said.template, "delivery_id": delivery_id}}]}},
        {"label": JOB_ASSERTION, "data": {
            "job_id": str(origin.job_id), "n": origin.n, "delivery_id": delivery_id, "created_at": said.created_at,
            "receipt": f"/v1/jobs/{origin.job_id}/receipt",
            "unsigned_sha256": hashlib.sha256(done.image.data).hexdigest()}},
    ]
    if done.watermark_id:
        assertions.append({"label": SOFT_BINDING, "data": soft_binding(done)})
    return {"label": manifest_label(origin.job_id, origin.n), "title": f"{origin.n}.{done.image.media_type.rsplit('/', 1)[1]}",
            "claim_generator_info": [SOFTWARE_AGENT], "assertions": assertions}


def soft_binding(done: RenderedFiles) -> dict[str, Any]:
    """The `c2pa.soft-binding` assertion of a watermarked file: the algorithm, and one block
    whose value is the mark id (its 6 bytes, base64) over the whole image, or over a clip's
    whole length (its timespan, in milliseconds)."""
    assert done.watermark_id is not None
    scope: dict[str, Any] = {"timespan": {"start": 0, "end": done.image.duration_ms}} if done.image.duration_ms else {}
    value = base64.b64encode(bytes.fromhex(done.watermark_id)).decode()
    return {"alg": watermark.ALGORITHM, "blocks": [{"scope": scope, "value": value}],
            "name": "Genline invisible watermark: the delivery's 48-bit mark id",
            "alg_params": watermark.CURRENT.parameters,
            "pad": []}
