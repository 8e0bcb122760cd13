"""`verify_receipt` and `verify_chain` against receipts signed as the platform signs them:
a receipt verifies with the published keys alone, and any change names what failed."""

import copy

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from genline_client import ReceiptVerificationError, verify_chain, verify_receipt
from genline_client.receipts import main as receipts_cli
from genline_client.receipts import receipt_sha256
from services.ingest.receipts.document import FORMAT, ReceiptSigner, jwk

TENANT = "t-receipts"


def chain_of(signer: ReceiptSigner, count: int, start: int = 1, previous: str | None = None) -> list[dict]:
    receipts = []
    for sequence in range(start, start + count):
        body = {"format": FORMAT, "kid": signer.kid, "job_id": f"job-{sequence}", "tenant_id": TENANT,
                "sequence": sequence, "previous_sha256": previous, "credits": {"charged": 10 * sequence},
                "outputs": [{"n": 1, "sha256": "ab" * 32, "size_bytes": 1000 + sequence}]}
        receipts.append(signer.sign(body))
        previous = receipts[-1]["sha256"]
    return receipts


def keys_of(*signers: ReceiptSigner) -> dict:
    return {"keys": [jwk(s.public_key, status="active") for s in signers]}


SIGNER = ReceiptSigner(Ed25519PrivateKey.generate())


def test_a_chain_verifies_with_the_published_keys_alone():
    receipts = chain_of(SIGNER, 3)
    bodies = verify_chain(reversed(receipts), keys_of(SIGNER))  # any order: the chain is put in sequence
    assert [b["sequence"] for b in bodies] == [1, 2, 3]
    assert bodies[2]["previous_sha256"] == receipt_sha256(bodies[1]) == receipts[1]["sha256"]


def leaves(value, path=()):
    if isinstance(value, dict):
        for name, item in value.items():
            yield from leaves(item, (*path, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def changed(value):
    if isinstance(value, bool) or value is None:
        return "x"
    if isinstance(value, int):
        return value + 1
    return value[:-1] + ("A" if value[-1:] != "A" else "B")


@pytest.mark.parametrize("path", list(leaves(chain_of(SIGNER, 1)[0])), ids=lambda p: ".".join(map(str, p)))
def test_changing_any_field_fails_and_says_what_failed(path):
    receipt = copy.deepcopy(chain_of(SIGNER, 1)[0])
    *parents, last = path
    holder = receipt
    for step in parents:
        holder = holder[step]
    holder[last] = changed(holder[last])
    with pytest.raises(ReceiptVerificationError,
                       match="signature does not verify|not the hash of its content|not among the published keys"
                             "|differs from the kid|format|algorithm"):
        verify_receipt(receipt, keys_of(SIGNER))


def test_a_dropped_receipt_breaks_the_chain_naming_the_missing_one():
    first, second, third = chain_of(SIGNER, 3)
    with pytest.raises(ReceiptVerificationError, match="jumps from 1 to 3: receipt 2 is missing"):
        verify_chain([first, third], keys_of(SIGNER))


def test_a_receipt_signed_with_another_key_is_refused():
    impostor = ReceiptSigner(Ed25519PrivateKey.generate())
    forged = chain_of(impostor, 1)[0]
    with pytest.raises(ReceiptVerificationError, match="not among the published keys"):
        verify_receipt(forged, keys_of(SIGNER))
    forged["signature"]["kid"] = forged["receipt"]["kid"] = SIGNER.kid  # claiming the real key
    with pytest.raises(ReceiptVerificationError, match="signature does not verify"):
        verify_receipt(forged, keys_of(SIGNER))


def test_after_a_rotation_old_and_new_receipts_verify_with_the_published_keys():
    old = chain_of(SIGNER, 2)
    rotated = ReceiptSigner(Ed25519PrivateKey.generate())
    new = chain_of(rotated, 2, start=3, previous=old[-1]["sha256"])
    assert len(verify_chain(old + new, keys_of(SIGNER, rotated))) == 4
    with pytest.raises(ReceiptVerificationError, match="not among the published keys"):
        verify_chain(old + new, keys_of(rotated))


def test_a_key_document_whose_kid_is_not_the_key_s_thumbprint_is_refused():
    document = keys_of(SIGNER)
    document["keys"][0]["kid"] = ReceiptSigner(Ed25519PrivateKey.generate()).kid
    with pytest.raises(ReceiptVerificationError, match="not named by its thumbprint"):
        verify_chain(chain_of(SIGNER, 1), document)


def test_the_command_line_says_ok_or_failed(tmp_path, capsys):
    import json

    receipts = chain_of(SIGNER, 2)
    (tmp_path / "keys.json").write_text(json.dumps(keys_of(SIGNER)))
    (tmp_path / "page.json").write_text(json.dumps({"data": receipts, "next_after": None}))
    assert receipts_cli(["verify", str(tmp_path / "page.json"), "--keys", str(tmp_path / "keys.json")]) == 0
    assert "OK 2 receipt(s)" in capsys.readouterr().out
    receipts[1]["receipt"]["credits"]["charged"] += 1
    (tmp_path / "one.json").write_text(json.dumps(receipts[1]))
    assert receipts_cli(["verify", str(tmp_path / "one.json"), "--keys", str(tmp_path / "keys.json")]) == 1
    assert "FAILED receipt of job job-2 (sequence 2): the signature does not verify" in capsys.readouterr().err
