"""Check Genline's signed job receipts offline, with nothing but the published keys.

A receipt is `{"receipt": BODY, "sha256": HEX, "signature": {"alg", "kid", "value"}}`. BODY
says what a job was asked, what it produced and what it cost; `sha256` is the SHA-256 of
BODY's RFC 8785 canonical JSON (JCS), and `signature.value` the Ed25519 signature (base64url)
of those same bytes under the key `kid`. Each tenant's receipts form a chain: BODY names its
`sequence` (1, 2, 3 …) and the `previous_sha256` of the receipt before it, so a receipt that
was changed, dropped or slipped in breaks the chain.

The keys are the document at `GET /.well-known/genline-keys.json` (JWK, `kty` OKP, `crv`
Ed25519), retired keys included, so receipts signed before a rotation still verify. A
key's `kid` is its RFC 7638 thumbprint, which this module checks too.

    keys = json.load(open("genline-keys.json"))
    verify_chain([json.load(open(f)) for f in files], keys)   # ReceiptVerificationError names what failed

`python -m genline_client.receipts verify FILE… --keys FILE` does the same from a shell.
"""

import argparse
import base64
import binascii
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from genline_client.errors import GenlineError

FORMAT = "genline.receipt.v1"
ALGORITHM = "EdDSA"


class ReceiptVerificationError(GenlineError):
    """A receipt, or the chain of receipts, does not check out; the message says which and why."""


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON: keys sorted by UTF-16 code units, no spaces, numbers
    written as ECMAScript writes them, UTF-8."""
    return rfc8785.dumps(value)


def receipt_sha256(body: Mapping[str, Any]) -> str:
    """The hash a receipt is known by (and that the next one of its tenant names)."""
    return hashlib.sha256(canonical(body)).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_key: bytes) -> str:
    """The RFC 7638 thumbprint of an Ed25519 public key's JWK: what a receipt's `kid` names."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key)}
    return b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def public_keys(keys: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Ed25519PublicKey]:
    """The keys by `kid`, from the published document (or its `keys` list). A key whose `kid`
    is not its thumbprint is refused: the document was changed."""
    listed = keys.get("keys", []) if isinstance(keys, Mapping) else list(keys)
    found = {}
    for jwk in listed:
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue
        try:
            raw = unb64url(jwk["x"])
            public = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, ValueError, binascii.Error):
            raise ReceiptVerificationError(f"key {jwk.get('kid')!r} in the key document is not an Ed25519 key") from None
        if jwk.get("kid") != key_id(raw):
            raise ReceiptVerificationError(f"key {jwk.get('kid')!r} in the key document is not named by its thumbprint")
        found[jwk["kid"]] = public
    return found


def _describe(body: Mapping[str, Any]) -> str:
    return f"receipt of job {body.get('job_id')} (sequence {body.get('sequence')})"


def verify_receipt(receipt: Mapping[str, Any], keys: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict:
    """The receipt's body when its hash and signature check out under one of `keys` (the
    published document); otherwise ReceiptVerificationError naming what failed."""
    known = keys if isinstance(keys, dict) and all(isinstance(v, Ed25519PublicKey) for v in keys.values()) \
        else public_keys(keys)
    body, signature = receipt.get("receipt"), receipt.get("signature")
    if not isinstance(body, Mapping) or not isinstance(signature, Mapping):
        raise ReceiptVerificationError("not a receipt: it needs `receipt` and `signature`")
    what = _describe(body)
    if body.get("format") != FORMAT:
        raise ReceiptVerificationError(f"{what}: format {body.get('format')!r} is not {FORMAT!r}")
    kid = signature.get("kid")
    if signature.get("alg") != ALGORITHM:
        raise ReceiptVerificationError(f"{what}: signature algorithm {signature.get('alg')!r} is not {ALGORITHM}")
    if body.get("kid") != kid:
        raise ReceiptVerificationError(f"{what}: signature kid {kid!r} differs from the kid the receipt names"
                                       f" ({body.get('kid')!r})")
    if kid not in known:
        raise ReceiptVerificationError(f"{what}: signed with key {kid!r}, which is not among the published keys")
    content = canonical(dict(body))
    value = str(signature.get("value", ""))
    try:
        raw = unb64url(value)
        if b64url(raw) != value:  # spare bits set: the same signature written another way
            raise ValueError("not canonical base64url")
        known[kid].verify(raw, content)
    except (InvalidSignature, ValueError, binascii.Error):
        raise ReceiptVerificationError(f"{what}: the signature does not verify with key {kid!r}: the receipt's"
                                       " content or its signature was changed") from None
    digest = hashlib.sha256(content).hexdigest()
    if receipt.get("sha256") != digest:
        raise ReceiptVerificationError(f"{what}: sha256 {receipt.get('sha256')!r} is not the hash of its content"
                                       f" ({digest})")
    return dict(body)


def verify_chain(receipts: Iterable[Mapping[str, Any]], keys: Mapping[str, Any] | Iterable[Mapping[str, Any]],
                 previous_sha256: str | None = None) -> list[dict]:
    """Verify every receipt, then each tenant's chain in sequence order: numbers one after
    another, each naming the hash of the one before. A chain that starts at sequence 1 has no
    predecessor; one that starts later is checked against `previous_sha256` when it is given
    (the hash of the last receipt checked before). The bodies, in chain order."""
    known = public_keys(keys)
    by_tenant: dict[str, list[dict]] = {}
    for receipt in receipts:
        body = verify_receipt(receipt, known)
        by_tenant.setdefault(str(body.get("tenant_id")), []).append(body)
    chained: list[dict] = []
    for tenant, bodies in sorted(by_tenant.items()):
        bodies.sort(key=lambda b: b.get("sequence", 0))
        _check_links(tenant, bodies, previous_sha256=previous_sha256)
        chained += bodies
    return chained


def _check_links(tenant: str, bodies: list[dict], *, previous_sha256: str | None) -> None:
    first = bodies[0]
    if first.get("sequence") == 1 and first.get("previous_sha256") is not None:
        raise ReceiptVerificationError(f"{_describe(first)}: the first receipt of tenant {tenant} names a previous one")
    if previous_sha256 is not None and first.get("previous_sha256") != previous_sha256:
        raise ReceiptVerificationError(f"{_describe(first)}: previous_sha256 {first.get('previous_sha256')!r} is not"
                                       f" the receipt checked before it ({previous_sha256})")
    for before, after in zip(bodies, bodies[1:]):
        if after.get("sequence") == before.get("sequence"):
            raise ReceiptVerificationError(f"{_describe(after)}: tenant {tenant} has two receipts with this sequence")
        if after.get("sequence") != before.get("sequence", 0) + 1:
            missing = ", ".join(str(n) for n in range(before["sequence"] + 1, after["sequence"]))
            raise ReceiptVerificationError(f"{_describe(after)}: the chain of tenant {tenant} jumps from"
                                           f" {before['sequence']} to {after['sequence']}: receipt {missing} is missing")
        if after.get("previous_sha256") != receipt_sha256(before):
            raise ReceiptVerificationError(f"{_describe(after)}: previous_sha256 {after.get('previous_sha256')!r} is"
                                           f" not the hash of receipt {before['sequence']} ({receipt_sha256(before)})")


def receipts_in(document: Any) -> list[dict]:
    """The receipts a file holds: one receipt, a list of them, or a page of `GET /v1/receipts`."""
    if isinstance(document, Mapping) and "data" in document:
        return list(document["data"])
    if isinstance(document, list):
        return document
    return [document]


def add_verify_arguments(verify: argparse.ArgumentParser) -> None:
    verify.add_argument("files", nargs="+", metavar="FILE", help="a receipt, a list of them, or a GET /v1/receipts page")
    verify.add_argument("--keys", required=True, metavar="FILE", help="GET /.well-known/genline-keys.json, saved")
    verify.add_argument("--previous", metavar="SHA256", help="the hash of the receipt before the first one given")


def verify_files(args: argparse.Namespace, prog: str) -> int:
    """`verify`'s work: 0 when every receipt and chain checks out, 1 when one does not, 2
    when a file cannot be read; what failed on stderr."""
    try:
        with open(args.keys, encoding="utf-8") as file:
            keys = json.load(file)
        receipts = []
        for name in args.files:
            with open(name, encoding="utf-8") as file:
                receipts += receipts_in(json.load(file))
        bodies = verify_chain(receipts, keys, previous_sha256=args.previous)
    except ReceiptVerificationError as error:
        print(f"FAILED {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:  # a file that cannot be read, or is not JSON
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    tenants = sorted({str(b["tenant_id"]) for b in bodies})
    print(f"OK {len(bodies)} receipt(s) of {', '.join(tenants)}: signatures and chain verify")
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "python -m genline_client.receipts") -> int:
    """`verify FILE… --keys FILE`: 0 when every receipt and chain checks out, 1 otherwise."""
    parser = argparse.ArgumentParser(prog=prog, description="Check signed job receipts offline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_verify_arguments(commands.add_parser("verify", help="verify receipts and their chain with the published keys"))
    return verify_files(parser.parse_args(argv), prog)


if __name__ == "__main__":
    sys.exit(main())
