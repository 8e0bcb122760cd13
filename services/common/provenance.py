"""Content Credentials (C2PA) as delivery writes them and ingest reads them back: the
assertion that binds a delivered file to its job, the certificates a deployment signs with,
and a reading of a file's manifest against the deployment's trust anchor.

A deployment signs with an X.509 end-entity certificate that a C2PA validator accepts: key
usage `digitalSignature` (critical) and the extended key usage `emailProtection` (a
certificate for TLS alone, `serverAuth`, is refused), issued by the deployment's CA, whose
certificate is the trust anchor published at `/.well-known/genline-c2pa-anchors.pem`. The
embedded stack makes both (`new_signing_credentials`); production brings the operator's.

The C2PA SDK (`c2pa-python`, the Content Authenticity Initiative's) does the reading and
the signing; the validation state it reports is what `read_manifest` answers: `Trusted`
(signature, chain and anchor hold), `Valid` (the signature holds, the anchor is not ours),
`Invalid` (a byte changed since signing, or a broken signature).
"""

import io
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

# The assertion that binds a delivered file to its job and receipt (a label of our own
# namespace, as C2PA asks of custom assertions).
JOB_ASSERTION = "com.genline.job"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ANCHORS_PATH = "/.well-known/genline-c2pa-anchors.pem"
# Media types the SDK signs and reads, as delivery produces them.
SIGNABLE = frozenset({"image/png", "image/jpeg", "image/webp", "video/mp4"})


# ---- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningCredentials:
    """PEM texts: the signing key, the chain (end entity first, then the issuer), and the
    trust anchor (the issuing CA's certificate) that validators are given."""

    key_pem: str
    chain_pem: str
    anchor_pem: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Genline"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class CertificateAuthority:
    """A deployment's CA: it issues signing certificates, and its certificate is the anchor."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _key_usage(signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=not signer,
                         crl_sign=not signer, encipher_only=False, decipher_only=False)


def new_certificate_authority(deployment: str, valid_days: int = 3650) -> CertificateAuthority:
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{deployment} Content Credentials CA")
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + timedelta(days=valid_days))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(_key_usage(signer=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .sign(key, hashes.SHA256()))
    return CertificateAuthority(key, certificate)


def issue_signing_credentials(ca: CertificateAuthority, name: str, *, valid_days: int = 825) -> SigningCredentials:
    """An ES256 signing certificate issued by `ca`, with the key usage and EKU a C2PA
    validator requires of a signer. Rotating is issuing another: files signed under the one
    before still chain to the same anchor."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.certificate.subject)
              .public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + timedelta(days=valid_days))
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(_key_usage(signer=True), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
              .sign(ca.key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return SigningCredentials(key_pem=key_pem, chain_pem=_pem(signer) + _pem(ca.certificate),
                              anchor_pem=_pem(ca.certificate))


def new_signing_credentials(deployment: str) -> SigningCredentials:
    """A CA of the deployment's own and a signing certificate it issued."""
    return issue_signing_credentials(new_certificate_authority(deployment), f"{deployment} Content Credentials signer")


def subject_names(pem: str) -> list[str]:
    """The subject (its common name, else the whole name) of each certificate in a PEM text."""
    names = []
    for certificate in x509.load_pem_x509_certificates(pem.encode()):
        common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names.append(str(common[0].value) if common else certificate.subject.rfc4514_string())
    return names


def sniffed_media_type(data: bytes) -> str | None:
    """The media type of a file the SDK signs and reads, from its first bytes; None for another."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


# ---- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ManifestReading:
    """What a file's Content Credentials say, as the C2PA SDK validated them."""

    present: bool
    state: str | None = None  # Trusted | Valid | Invalid
    label: str | None = None  # the active manifest's label
    issuer: str | None = None
    signed_at: str | None = None
    source_type: str | None = None  # the digital source type of the first action
    job: dict[str, Any] | None = None  # the com.genline.job assertion
    ingredients: int = 0
    failures: list[str] = field(default_factory=list)  # validation codes that failed


def _context(anchors_pem: str | None) -> Any:
    import c2pa

    trust = {"verify": {"verify_trust": True}, "trust": {"user_anchors": anchors_pem}} if anchors_pem else {}
    return c2pa.Context.from_dict(trust) if trust else None


def read_manifest(data: bytes, media_type: str, *, anchors_pem: str | None) -> ManifestReading:
    """The active manifest of `data`, validated against `anchors_pem` (the deployment's trust
    anchors); `present=False` when the file has none (or is not a format the SDK reads)."""
    import c2pa

    if media_type not in SIGNABLE:
        return ManifestReading(present=False)
    try:
        context = _context(anchors_pem)
        reader = (c2pa.Reader(media_type, io.BytesIO(data), context=context) if context is not None
                  else c2pa.Reader(media_type, io.BytesIO(data)))
        with reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except c2pa.C2paError as error:
        if "ManifestNotFound" in type(error).__name__ or "not found" in str(error).lower():
            return ManifestReading(present=False)
        return ManifestReading(present=True, state="Invalid", failures=[f"{type(error).__name__}: {error}"])
    return _reading(store, str(state) if state is not None else None)


def _reading(store: dict[str, Any], state: str | None) -> ManifestReading:
    label = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(label, {}) if label else {}
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get("actions", [])
    first = actions[0] if actions else {}
    results = store.get("validation_results", {}).get("activeManifest", {})
    failures = [item.get("code", "") for item in results.get("failure", [])]
    signature = manifest.get("signature_info", {})
    return ManifestReading(present=True, state=state or store.get("validation_state"), label=label,
                           issuer=signature.get("issuer"), signed_at=signature.get("time"),
                           source_type=first.get("digitalSourceType"), job=assertions.get(JOB_ASSERTION),
                           ingredients=len(manifest.get("ingredients", [])), failures=failures)
