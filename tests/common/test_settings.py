"""Production refuses placeholder and short secrets, however they are spelt."""

import pytest

from services.common.identity import new_service_key
from services.common.provenance import new_signing_credentials
from services.common.settings import ServiceSettings
from services.delivery.settings import DeliverySettings
from services.ingest.settings import IngestSettings
from services.ingest.signing_key import new_signing_key_text
from services.ledger.settings import LedgerSettings
from services.router.settings import RouterSettings

REAL = "q7Zp2vL9xW4mK8rT1yB6"
DATABASE = f"postgresql://genline:{REAL}@db:5432/genline"


SEED, PUBLIC = new_service_key()


def production(settings_class=ServiceSettings, **values):
    return settings_class(**({"environment": "production", "database_url": DATABASE, "s3_access_key_id": "AKIA",
                              "s3_secret_access_key": REAL, "service_key": SEED, "service_keys": {"ingest": PUBLIC},
                              "kafka_security_protocol": "SASL_SSL", "kafka_password": REAL}
                             | ({"data_key_kms_key_id": "alias/genline"} if settings_class is IngestSettings else {})
                             | values))


@pytest.mark.parametrize("placeholder", ["CHANGE_ME", "change-me", "Change Me", "changeme", "REPLACE_ME", "minioadmin",
                                         "<placeholder>", "secret"])
def test_placeholders_are_refused_in_production_whatever_their_spelling(placeholder):
    with pytest.raises(ValueError, match="GENLINE_S3_SECRET_ACCESS_KEY is a placeholder"):
        production(s3_secret_access_key=placeholder)
    with pytest.raises(ValueError, match="GENLINE_ADMIN_TOKEN is a placeholder"):
        production(LedgerSettings, admin_token=placeholder)
    with pytest.raises(ValueError, match="placeholder"):
        production(RouterSettings, provider_secrets={"fal": placeholder})
    with pytest.raises(ValueError, match="GENLINE_RECEIPT_SIGNING_KEY is a placeholder"):
        production(IngestSettings, receipt_signing_key=placeholder)


def test_the_example_secrets_database_password_is_refused():
    with pytest.raises(ValueError, match="password in GENLINE_DATABASE_URL is a placeholder"):
        production(database_url="postgresql://genline:CHANGE_ME@postgres.example.com:5432/genline")


def test_short_secrets_are_refused_in_production():
    with pytest.raises(ValueError, match="shorter than 16 characters"):
        production(s3_secret_access_key="k3y-2short")
    with pytest.raises(ValueError, match="GENLINE_PAYMENT_WEBHOOK_SECRET is shorter"):
        production(LedgerSettings, payment_webhook_secret="whsec_abc")


def test_real_secrets_pass_and_development_accepts_anything():
    assert production(LedgerSettings, admin_token=REAL, payment_webhook_secret=f"whsec_{REAL}").admin_token
    assert production(database_url="postgresql://genline@db/genline")  # no password: peer authentication
    assert ServiceSettings(environment="development", database_url="postgresql://x:CHANGE_ME@db/x",
                           s3_access_key_id="a", s3_secret_access_key="CHANGE_ME")


def test_production_needs_a_receipt_signing_key_and_refuses_what_is_not_a_key():
    with pytest.raises(ValueError, match="GENLINE_RECEIPT_SIGNING_KEY must be set in production"):
        production(IngestSettings)
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        production(IngestSettings, receipt_signing_key=REAL + REAL)
    assert production(IngestSettings, receipt_signing_key=new_signing_key_text())
    assert IngestSettings(environment="test", database_url=DATABASE, s3_access_key_id="a",
                          s3_secret_access_key="b").receipt_signing_key is None  # each process signs with its own


@pytest.mark.parametrize("settings_class", [IngestSettings, LedgerSettings, RouterSettings])
def test_production_needs_the_services_identity_key_and_its_peers_public_keys(settings_class):
    extra = {"receipt_signing_key": new_signing_key_text()} if settings_class is IngestSettings else {}
    with pytest.raises(ValueError, match="GENLINE_SERVICE_KEY must be set in production"):
        production(settings_class, service_key=None, **extra)
    with pytest.raises(ValueError, match="GENLINE_SERVICE_KEYS must name"):
        production(settings_class, service_keys={}, **extra)
    with pytest.raises(ValueError, match="GENLINE_SERVICE_KEY is not an Ed25519 seed"):
        production(settings_class, service_key=REAL, **extra)
    with pytest.raises(ValueError, match="the key of 'ingest' is not an Ed25519 public key"):
        production(settings_class, service_keys={"ingest": "abc"}, **extra)
    assert production(settings_class, **extra).service_key


def test_production_is_the_default_environment(monkeypatch):
    monkeypatch.delenv("GENLINE_ENVIRONMENT", raising=False)
    with pytest.raises(ValueError, match="production needs SASL_SSL"):
        RouterSettings(database_url=DATABASE, s3_access_key_id="AKIA", s3_secret_access_key=REAL)
    with pytest.raises(ValueError, match="GENLINE_SERVICE_KEY must be set in production"):
        RouterSettings(database_url=DATABASE, s3_access_key_id="AKIA", s3_secret_access_key=REAL,
                       kafka_security_protocol="SASL_SSL", kafka_password=REAL)
    with pytest.raises(ValueError, match="GENLINE_S3_SECRET_ACCESS_KEY is a placeholder"):
        ServiceSettings(database_url=DATABASE, s3_access_key_id="AKIA", s3_secret_access_key="CHANGE_ME")


def test_production_ingest_needs_a_key_encryption_key_and_refuses_a_broken_key_file(tmp_path):
    with pytest.raises(ValueError, match="GENLINE_DATA_KEY_KEK_FILE or GENLINE_DATA_KEY_KMS_KEY_ID must be set"):
        production(IngestSettings, receipt_signing_key=new_signing_key_text(), data_key_kms_key_id=None)
    (tmp_path / "kek.json").write_text("{}")
    with pytest.raises(ValueError, match="GENLINE_DATA_KEY_KEK_FILE .*kek.json: not a KEK file"):
        production(IngestSettings, receipt_signing_key=new_signing_key_text(), data_key_kms_key_id=None,
                   data_key_kek_file=str(tmp_path / "kek.json"))


def test_production_delivery_needs_its_content_credentials_certificate_and_key():
    credentials = new_signing_credentials("production")
    with pytest.raises(ValueError, match="GENLINE_PROVENANCE_CERTIFICATE_CHAIN .* must be set in production"):
        production(DeliverySettings)
    with pytest.raises(ValueError, match="GENLINE_PROVENANCE_SIGNING_KEY is a placeholder"):
        production(DeliverySettings, provenance_certificate_chain=credentials.chain_pem,
                   provenance_signing_key="CHANGE_ME")
    assert production(DeliverySettings, provenance_certificate_chain=credentials.chain_pem,
                      provenance_signing_key=credentials.key_pem).provenance_signing_key
