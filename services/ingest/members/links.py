"""Signed, expiring links: an invitation, a sign-in by mail. A link's token is random, carries
its purpose and expiry, and is signed (HMAC-SHA256) with the deployment's link key, so a forged
or altered one is refused before the database is asked; the database keeps only its hash and
marks it used, so it works once."""

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from pydantic import SecretStr

log = logging.getLogger(__name__)


class BadLink(Exception):
    """A link that is not ours, was altered, or has expired: nothing more is said."""


@dataclass(frozen=True)
class LinkSigner:
    """Signs and checks the tokens of links meant for `purpose`s (`invitation`, `sign-in`)."""

    key: bytes

    @classmethod
    def from_settings(cls, key: SecretStr | None, receipt_key: SecretStr | None) -> "LinkSigner":
        """The link key; else one derived from the receipt signing key (every replica holds it);
        else a key of this process's own."""
        if key is not None:
            return cls(key.get_secret_value().encode())
        if receipt_key is not None:
            return cls(hashlib.sha256(b"genline member links\0" + receipt_key.get_secret_value().encode()).digest())
        log.warning("neither GENLINE_MEMBER_LINK_KEY nor GENLINE_RECEIPT_SIGNING_KEY is set: links are signed with a"
                    " key made for this process")
        return cls(secrets.token_bytes(32))

    def _mac(self, message: str) -> str:
        mac = hmac.new(self.key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def sign(self, purpose: str, expires_at: float) -> str:
        body = f"{secrets.token_urlsafe(24)}.{int(expires_at)}"
        return f"{body}.{self._mac(f'{purpose}.{body}')}"

    def check(self, purpose: str, token: str) -> str:
        """The token, when it is ours, for `purpose`, and not expired; else BadLink."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(token) > 200:
            raise BadLink
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._mac(f"{purpose}.{body}"), parts[2]):
            raise BadLink
        if int(parts[1]) <= time.time():
            raise BadLink
        return token
