"""Provenance on delivered images and clips: each format (PNG, JPEG, WebP, MP4) signed with the deployment's certificate and
read back with the C2PA SDK's own Reader (Trusted against the deployment's anchor, the
generated-media source type, the job binding); a flipped byte reads Invalid; a re-encoded
copy loses the manifest and is still attributed by its watermark, which the manifest declares
as its soft binding."""

import base64
import io
import json
import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from uuid import uuid4

import c2pa
import numpy as np
import pytest
from PIL import Image, ImageSequence

from services.common import watermark
from services.common.provenance import (
    JOB_ASSERTION,
    TRAINED_ALGORITHMIC_MEDIA,
    issue_signing_credentials,
    new_certificate_authority,
    new_signing_credentials,
    read_manifest,
)
from services.common.templates import Delivery
from services.delivery import provenance
from services.delivery.postprocess import Rendered, RenderedFiles, postprocess
from services.delivery.settings import DeliverySettings

CREDENTIALS = new_signing_credentials("test deployment")
UNUSED = {"database_url": "postgresql://unused", "s3_access_key_id": "unused", "s3_secret_access_key": "unused"}


def photo_like(width: int = 320, height: int = 256) -> Image.Image:
    """Smooth colour with texture, as a photograph has: the watermark hides in its chroma."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:height, :width]
    base = np.stack([120 + 60 * np.sin(xx / 37), 110 + 50 * np.cos(yy / 23), 100 + 40 * np.sin((xx + yy) / 51)], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8), "RGB")


def encoded(image: Image.Image, pil_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def reader_json(data: bytes, media_type: str, anchors: str | None = CREDENTIALS.anchor_pem) -> tuple[str, dict]:
    """The SDK's own reading: validation state and manifest store."""
    context = c2pa.Context.from_dict({"trust": {"user_anchors": anchors}, "verify": {"verify_trust": True}})
    with c2pa.Reader(media_type, io.BytesIO(data), context=context) as reader:
        return str(reader.get_validation_state()), json.loads(reader.json())


def delivered(pil_format: str, target: str) -> tuple[provenance.Origin, bytes, str, str | None, str | None]:
    source = encoded(photo_like(), pil_format)
    origin = provenance.Origin(job_id=uuid4(), n=1, provider="local-fast", template="generic", created_at=datetime(2026, 11, 26, 2, 0, tzinfo=UTC),
                               source=source, model="painter", model_version="2026-11-01")
    done = postprocess(source, Delivery(format=target, quality=90),
                       mark=watermark.Embedding(provenance.mark_id(origin.job_id, 1)))
    marked = provenance.Marker(CREDENTIALS).mark(done, origin)
    return origin, marked.image.data, marked.image.media_type, marked.manifest_label, marked.watermark_id


@pytest.mark.parametrize(("pil_format", "target", "media_type"),
                         [("PNG", "png", "image/png"), ("PNG", "jpeg", "image/jpeg"), ("PNG", "webp", "image/webp")])
def test_a_delivered_image_reads_trusted_with_its_source_type_and_job(pil_format, target, media_type):
    origin, data, shown_type, label, mark = delivered(pil_format, target)

    state, store = reader_json(data, media_type)
    assert shown_type == media_type and state == "Trusted"
    assert store["active_manifest"] == label == provenance.manifest_label(origin.job_id, 1)
    manifest = store["manifests"][label]
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    [first, *_] = assertions["c2pa.actions.v2"]["actions"]
    assert first["action"] == "c2pa.created" and first["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert first["softwareAgent"]["name"] == "Genline" and first["parameters"]["provider"] == "local-fast"
    assert (first["parameters"]["model"], first["parameters"]["model_version"]) == ("painter", "2026-11-01")
    binding = assertions[JOB_ASSERTION]
    assert binding["job_id"] == str(origin.job_id) and binding["n"] == 1 and binding["delivery_id"] == mark
    assert mark == provenance.mark_hex(provenance.mark_id(origin.job_id, 1))
    # The watermark declared as the manifest's soft binding: its algorithm, the mark id its value.
    soft = assertions["c2pa.soft-binding"]
    assert soft["alg"] == watermark.ALGORITHM and base64.b64decode(soft["blocks"][0]["value"]).hex() == mark
    # The same reading through the platform's verifier path.
    reading = read_manifest(data, media_type, anchors_pem=CREDENTIALS.anchor_pem)
    assert (reading.state, reading.label, reading.source_type) == ("Trusted", label, TRAINED_ALGORITHMIC_MEDIA)
    assert reading.job is not None and reading.job["job_id"] == str(origin.job_id)


def test_without_the_deployments_anchor_the_signature_is_only_valid():
    _, data, media_type, _, _ = delivered("PNG", "png")
    assert reader_json(data, media_type, anchors=new_signing_credentials("someone else").anchor_pem)[0] == "Valid"


@pytest.mark.parametrize("target", ["png", "jpeg", "webp"])
def test_a_flipped_byte_reads_invalid(target):
    _, data, media_type, _, _ = delivered("PNG", target)
    # A byte of the image's own data, past the manifest (which the encoders put first).
    changed = bytearray(data)
    changed[-40] ^= 0x01
    assert read_manifest(bytes(changed), media_type, anchors_pem=CREDENTIALS.anchor_pem).state == "Invalid"


def test_a_reencoded_copy_has_no_manifest_and_is_attributed_by_its_watermark():
    origin, data, media_type, _, mark = delivered("PNG", "png")
    with Image.open(io.BytesIO(data)) as opened:
        copy = encoded(opened.convert("RGB"), "JPEG", quality=75)  # as a social network re-encodes it

    assert read_manifest(copy, "image/jpeg", anchors_pem=CREDENTIALS.anchor_pem).present is False
    found = watermark.detect(np.asarray(Image.open(io.BytesIO(copy)).convert("RGB")))
    assert found.mark_id == provenance.mark_id(origin.job_id, 1) and found.confidence > 0
    assert provenance.mark_hex(found.mark_id) == mark


def test_an_unmarked_photo_carries_no_mark():
    found = watermark.detect(np.asarray(photo_like()))
    assert found.mark_id is None


def test_a_provider_manifest_is_kept_as_an_ingredient():
    provider = new_signing_credentials("a provider")
    photo = photo_like()
    width, height = photo.size
    source = Rendered(data=encoded(photo, "PNG"), media_type="image/png", width=width, height=height)
    signed_by_provider = provenance.Marker(provider).sign(source, {
        "claim_generator_info": [{"name": "provider"}], "assertions": [{"label": "c2pa.actions", "data": {
            "actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]}}]}, source=b"")

    done = postprocess(signed_by_provider, Delivery(format="png"))
    origin = provenance.Origin(job_id=uuid4(), n=1, provider="hosted", template=None, created_at=datetime.now(UTC), source=signed_by_provider)
    marked = provenance.Marker(CREDENTIALS).mark(done, origin)

    reading = read_manifest(marked.image.data, "image/png", anchors_pem=CREDENTIALS.anchor_pem)
    assert reading.state == "Trusted" and reading.ingredients == 1


def test_the_embedded_stacks_key_is_stored_wrapped_and_opens_under_its_kek(tmp_path):
    kek = tmp_path / "kek.json"
    kek.write_text(json.dumps({"active": "k1", "keys": {"k1": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}}))
    wrapped = provenance.wrap_signing_key(CREDENTIALS.key_pem, kek)
    assert "PRIVATE KEY" not in json.dumps(wrapped)
    key_file, chain_file = tmp_path / "key.json", tmp_path / "chain.pem"
    key_file.write_text(json.dumps(wrapped))
    chain_file.write_text(CREDENTIALS.chain_pem)

    settings = DeliverySettings(**UNUSED, environment="test", provenance_certificate_chain_file=str(chain_file),
                                provenance_signing_key_file=str(key_file), provenance_kek_file=str(kek))

    assert provenance.load_signing_credentials(settings).key_pem == CREDENTIALS.key_pem



def iso_bmff(media_bytes: int = 64) -> bytes:
    """An MP4 container as the ISO base media format lays it out (ftyp, moov with its movie
    header, mdat), the structure the SDK binds its manifest into; delivery's clips are MP4s
    of this layout with real tracks."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    movie_header = (b"\0\0\0\0" + struct.pack(">IIII", 0, 0, 1000, 0) + struct.pack(">IH", 0x00010000, 0x0100)
                    + b"\0" * 10 + matrix + b"\0" * 24 + struct.pack(">I", 2))
    return (box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41") + box(b"moov", box(b"mvhd", movie_header))
            + box(b"mdat", bytes(range(media_bytes))))


def test_an_mp4_is_signed_trusted_and_a_flipped_byte_reads_invalid():
    clip = iso_bmff()
    done = RenderedFiles(image=Rendered(data=clip, media_type="video/mp4", width=16, height=16), thumbnail=Rendered(data=b"", media_type="image/webp", width=1, height=1))
    origin = provenance.Origin(job_id=uuid4(), n=2, provider="local-video", template="generic", created_at=datetime.now(UTC), source=clip)
    marked = provenance.Marker(CREDENTIALS).mark(done, origin)

    state, store = reader_json(marked.image.data, "video/mp4")
    assert state == "Trusted" and store["active_manifest"] == marked.manifest_label
    assertions = {a["label"]: a["data"] for a in store["manifests"][marked.manifest_label]["assertions"]}
    assert assertions["c2pa.actions.v2"]["actions"][0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert assertions[JOB_ASSERTION]["job_id"] == str(origin.job_id) and "c2pa.soft-binding" not in assertions
    changed = bytearray(marked.image.data)
    changed[-10] ^= 0x01  # inside mdat, the media
    assert read_manifest(bytes(changed), "video/mp4", anchors_pem=CREDENTIALS.anchor_pem).state == "Invalid"


def test_a_rotated_signing_certificate_leaves_what_was_signed_before_trusted():
    ca = new_certificate_authority("rotating deployment")
    before, after = (issue_signing_credentials(ca, f"signer {n}") for n in (1, 2))
    source = encoded(photo_like(), "PNG")
    signed = []
    for credentials in (before, after):
        done = postprocess(source, Delivery(format="png"))
        origin = provenance.Origin(job_id=uuid4(), n=1, provider="local-fast", template=None, created_at=datetime.now(UTC), source=source)
        signed.append(provenance.Marker(credentials).mark(done, origin).image.data)

    assert [read_manifest(data, "image/png", anchors_pem=before.anchor_pem).state for data in signed] == ["Trusted", "Trusted"]


def test_one_marker_signs_file_after_file_in_each_thread_each_signed_for_its_own_job():
    """A marker keeps its signer between files, one a thread: every file of a run, in any
    format and from any thread, reads Trusted and names its own job."""
    marker = provenance.Marker(CREDENTIALS)

    def run(formats: list[str]) -> list[tuple[bytes, str, provenance.Origin]]:
        signed = []
        for target in formats:
            source = encoded(photo_like(), "PNG")
            origin = provenance.Origin(job_id=uuid4(), n=1, provider="local-fast", template="generic",
                                       created_at=datetime.now(UTC), source=source)
            marked = marker.mark(postprocess(source, Delivery(format=target)), origin)
            signed.append((marked.image.data, marked.image.media_type, origin))
        return signed

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(run, [["png", "jpeg", "webp"], ["webp", "png", "jpeg"]]))
    for data, media_type, origin in [file for files in runs + [run(["png", "png"])] for file in files]:
        state, store = reader_json(data, media_type)
        assert state == "Trusted"
        assertions = store["manifests"][store["active_manifest"]]["assertions"]
        assert next(a["data"] for a in assertions if a["label"] == JOB_ASSERTION)["job_id"] == str(origin.job_id)


def test_an_animated_webp_clip_is_signed_stays_animated_and_every_frame_carries_the_mark():
    frames = [Image.fromarray(np.asarray(photo_like(256, 256))[:, ::-1] if i % 2 else np.asarray(photo_like(256, 256)))
              for i in range(4)]
    source = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)
    origin = provenance.Origin(job_id=uuid4(), n=1, provider="local-clip", template="generic", created_at=datetime.now(UTC), source=source)
    identity = provenance.mark_id(origin.job_id, 1)
    done = postprocess(source, Delivery(format="png"), mark=watermark.Embedding(identity))  # a clip stays animated
    marked = provenance.Marker(CREDENTIALS).mark(done, origin)

    assert read_manifest(marked.image.data, "image/webp", anchors_pem=CREDENTIALS.anchor_pem).state == "Trusted"
    with Image.open(io.BytesIO(marked.image.data)) as clip:
        assert clip.n_frames == 4
        pictures = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(clip)]
    assert marked.watermark_id == provenance.mark_hex(identity)
    assert all(watermark.detect(picture).mark_id == identity for picture in pictures)
    assert watermark.detect_frames(pictures).mark_id == identity
