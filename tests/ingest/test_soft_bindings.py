"""What C2PA's soft-binding resolution takes as a binding, without a server: the algorithms the
delivered manifests declare, and a value that is a mark id's 6 bytes in base64, however a client
wrote them in a URL; anything else is refused with a reason. An output matches only the
algorithm its manifest declared (any of ours for outputs delivered before claims were kept)."""

import base64

import pytest

from services.common import watermark
from services.ingest.receipts.provenance import SOFT_BINDING_ALGORITHMS, UnresolvableBinding, binding_mark_id, declares

MARK = bytes.fromhex("fbef0f1a57ff")  # base64 with both characters the URL-safe alphabet replaces


def test_the_delivered_versions_are_resolved_the_current_one_first():
    assert SOFT_BINDING_ALGORITHMS == ("com.genline.watermark.tiles.2", "com.genline.watermark.tiles.1")
    assert SOFT_BINDING_ALGORITHMS[0] == watermark.ALGORITHM


@pytest.mark.parametrize("value", [
    base64.b64encode(MARK).decode(),  # as the manifest holds it: "++8PGlf/"
    base64.urlsafe_b64encode(MARK).decode(),
    base64.b64encode(MARK).decode().replace("+", " "),  # a '+' sent unencoded in a query string
    base64.b64encode(MARK).decode().rstrip("="),
])
def test_a_mark_id_is_read_however_its_base64_was_written(value):
    assert binding_mark_id(watermark.ALGORITHM, value) == MARK.hex()


@pytest.mark.parametrize(("alg", "value", "said"), [
    ("com.adobe.trustmark.Q", base64.b64encode(MARK).decode(), "unknown soft-binding algorithm"),
    (watermark.ALGORITHM, "not base64!", "not base64"),
    (watermark.ALGORITHM, base64.b64encode(MARK[:3]).decode(), "is 3 bytes"),
    (watermark.ALGORITHM, base64.b64encode(MARK + b"\0").decode(), "is 7 bytes"),
])
def test_anything_else_is_refused_with_its_reason(alg, value, said):
    with pytest.raises(UnresolvableBinding, match=said):
        binding_mark_id(alg, value)


def test_an_output_matches_the_algorithm_its_manifest_declared():
    current, earlier = SOFT_BINDING_ALGORITHMS
    assert declares({"claims": {"soft_binding": earlier}}, earlier)
    assert not declares({"claims": {"soft_binding": earlier}}, current)
    assert declares({"claims": None}, current) and declares({}, earlier)  # delivered before claims were kept
