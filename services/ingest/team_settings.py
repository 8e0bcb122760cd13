"""The settings of a tenant's people: where mail goes out (SMTP), how links are signed, how
long sessions live, and how the console reaches identity providers. Part of IngestSettings."""

from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import refuse_missing_or_weak


class TeamSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENLINE_", extra="ignore")

    # Where this deployment is reached from outside (`https://genline.example.com`): links in
    # mails and the identity providers' redirect URI start with it. Unset, each request's own
    # base URL is used (a laptop, tests).
    public_url: str | None = None
    # The SMTP server invitations and sign-in links are sent through; without one, no mail is
    # sent (an invitation is still made, and says so).
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0
    mail_from: str = "Genline <no-reply@genline.invalid>"
    # Invitations and sign-in links are signed with this key (HMAC-SHA256); every replica needs
    # the same. Unset, a key derived from the receipt signing key (required in production) is
    # used; without either (development, tests), each process signs with a key of its own.
    member_link_key: SecretStr | None = None
    invitation_ttl_s: int = 7 * 24 * 3600
    sign_in_link_ttl_s: int = 15 * 60
    # A console session ends after this long without a request, and this long after sign-in whatever happens.
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 3600
    # A sign-in through an identity provider must come back within this; its documents
    # (discovery, keys) are kept this long, and its calls wait at most oidc_timeout_s.
    sso_attempt_ttl_s: int = 10 * 60
    oidc_cache_s: float = 300.0
    oidc_timeout_s: float = 10.0
    # Identity providers must resolve to public addresses (a tenant names its issuer), unless
    # the deployment allows the network (a provider inside the cluster, tests on loopback).
    oidc_allowed_networks: list[str] = []

    @model_validator(mode="after")
    def link_key(self) -> "TeamSettings":
        refuse_missing_or_weak("GENLINE_MEMBER_LINK_KEY", self.member_link_key, required=False)
        return self
