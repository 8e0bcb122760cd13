"""The key receipts are signed with, as GENLINE_RECEIPT_SIGNING_KEY gives it: read from its
text (settings check it at start-up), or made anew (`genline receipts new-key`, the embedded
stack). Part of the kernel, because the settings read it; signing is receipts/document.py's."""

import base64
import binascii

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class InvalidSigningKey(ValueError):
    pass


def load_signing_key(text: str) -> Ed25519PrivateKey:
    """A PKCS#8 PEM, or the base64url (or base64) of the 32-byte seed."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(
                text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4)))
    except (ValueError, TypeError, binascii.Error) as error:
        raise InvalidSigningKey(f"not an Ed25519 private key: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidSigningKey("not an Ed25519 private key")
    return key


def new_signing_key_text() -> str:
    """A fresh key as GENLINE_RECEIPT_SIGNING_KEY takes it."""
    seed = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                      serialization.NoEncryption())
    return b64url(seed)
