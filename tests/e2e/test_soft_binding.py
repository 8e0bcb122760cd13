"""C2PA's Soft Binding Resolution API on the running platform, as someone holding only a copy
uses it: a delivered image stripped of its Content Credentials (re-encoded, resized), its
watermark read with the platform's own detector, the mark id looked up at
`/matches/byBinding` (GET and POST), and the manifest it names fetched at
`/manifests/{manifestId}`: the provider, model, creation time, digital source type, soft
binding and the deployment's signer come back, and nothing of the tenant or the job. Bad
queries are RFC 9457 problems; `/services/supportedAlgorithms` lists the watermark's versions."""

import base64
import io
import json

import httpx
import numpy as np
from cryptography import x509
from cryptography.x509.oid import NameOID
from PIL import Image

from services.common import watermark
from services.common.provenance import ANCHORS_PATH, TRAINED_ALGORITHMIC_MEDIA


def stripped_copy(data: bytes) -> bytes:
    """The delivered file as a site would keep it: three quarters of its size, JPEG 80, no metadata."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def binding_of(copy: bytes) -> str:
    """The soft binding's value of a copy, as anyone reads it: the mark id its watermark carries,
    its 6 bytes in base64."""
    with Image.open(io.BytesIO(copy)) as opened:
        found = watermark.detect(np.asarray(opened.convert("RGB")))
    assert found.mark_id is not None, found
    return base64.b64encode(found.mark_id.to_bytes(6, "big")).decode()


def test_a_stripped_copy_leads_to_its_manifest_public_claims(platform, tenant_factory):
    tenant = tenant_factory()
    job_id = tenant.submit(images=1, candidates=2, seed=82)
    job = tenant.wait_settled([job_id])[job_id]
    assert job["state"] == "succeeded", job
    [output] = job["outputs"]
    [made] = [score for score in job["scores"] if score["index"] in job["selected"]]
    copy = stripped_copy(httpx.get(output["url"], timeout=30).content)
    with Image.open(io.BytesIO(copy)) as opened:
        assert "exif" not in opened.info and not opened.info.get("xmp")  # nothing of the manifest is left

    algorithms = httpx.get(f"{platform.ingest_url}/services/supportedAlgorithms", timeout=10).json()
    assert [entry["alg"] for entry in algorithms["watermarks"]][0] == watermark.ALGORITHM
    assert algorithms["fingerprints"] == []

    value = binding_of(copy)
    asked = {"alg": watermark.ALGORITHM, "value": value}
    found = httpx.get(f"{platform.ingest_url}/matches/byBinding", params=asked, timeout=10)
    assert found.status_code == 200, found.text
    assert found.json() == {"matches": [{"manifestId": output["manifest_label"]}]}
    posted = httpx.post(f"{platform.ingest_url}/matches/byBinding", json=asked, params={"maxResults": 1}, timeout=10)
    assert posted.json() == found.json()

    answer = httpx.get(f"{platform.ingest_url}/manifests/{output['manifest_label']}", timeout=10)
    assert answer.status_code == 200, answer.text
    claims = answer.json()
    assert claims["manifest_id"] == output["manifest_label"]
    assert (claims["provider"], claims["model"]) == (made["provider"], made["model"]) and claims["model_version"]
    assert claims["digital_source_type"] == TRAINED_ALGORITHMIC_MEDIA and claims["created_at"]
    assert claims["soft_binding"] == {"alg": watermark.ALGORITHM, "value": value}
    anchor = httpx.get(f"{platform.ingest_url}{ANCHORS_PATH}", timeout=10).text
    [certificate] = x509.load_pem_x509_certificates(anchor.encode())
    [common_name] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert claims["signer"] == {"anchors": [common_name.value], "trust_anchor": ANCHORS_PATH}
    # Nothing of whose it is: no tenant, no job, no receipt, no template.
    said = json.dumps(claims) + found.text
    for private in (job_id, tenant.id, "receipt", "template", "job"):
        assert private not in said, private


def test_bad_soft_binding_queries_are_problems(platform):
    def asked(**params) -> httpx.Response:
        return httpx.get(f"{platform.ingest_url}/matches/byBinding", params=params, timeout=10)

    for params in ({"alg": "com.example.watermark.1", "value": "AAAAAAAA"},
                   {"alg": watermark.ALGORITHM, "value": "not base64!"},
                   {"alg": watermark.ALGORITHM, "value": base64.b64encode(b"\x01\x02\x03").decode()}):
        refused = asked(**params)
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json", params
        assert refused.json()["type"].endswith("/invalid-soft-binding")
    assert asked(alg=watermark.ALGORITHM).status_code == 422  # no value
    # A mark id no delivery carries: no match, not an error.
    nobody = asked(alg=watermark.ALGORITHM, value=base64.b64encode(bytes(6)).decode())
    assert nobody.status_code == 200 and nobody.json() == {"matches": []}
    missing = httpx.get(f"{platform.ingest_url}/manifests/urn:c2pa:00000000-0000-4000-8000-000000000000", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
