"""Every Kafka client of a service is built from one place (services/common/bus/kafka_security.py):
TLS against the cluster's CA and SASL/SCRAM as the service's own user, from its settings.

TLS is exercised for real wherever the stack runs with `kafka_tls` (`make run`, the
launcher's test, `bench/e2e.py`): the services reach the broker over TLS only. SASL cannot be
exercised against the embedded broker: Tansu 0.6 keeps no SCRAM credentials in its memory or
S3 storage (creating a user is accepted and forgotten), so the login is checked here for
what the clients are given, and on Kubernetes by Strimzi's KafkaUsers."""

import ssl

import pytest
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from services.common.bus.kafka_security import client_options, faststream_security
from services.common.settings import ServiceSettings

PASSWORD = "a-kafka-password-long-enough"


def settings(**values) -> ServiceSettings:
    return ServiceSettings(**({"service_name": "router", "environment": "test", "database_url": "postgresql://unused",
                               "s3_access_key_id": "x", "s3_secret_access_key": "x", "kafka_bootstrap": "k:9093"}
                              | values))


def test_plaintext_gives_the_address_only():
    assert client_options(settings()) == {"bootstrap_servers": "k:9093", "security_protocol": "PLAINTEXT"}
    assert faststream_security(settings()) is None


def test_sasl_ssl_logs_in_as_the_services_own_user_over_verified_tls():
    options = client_options(settings(kafka_security_protocol="SASL_SSL", kafka_password=PASSWORD))
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "genline-router" and options["sasl_plain_password"] == PASSWORD
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    security = faststream_security(settings(kafka_security_protocol="SASL_SSL", kafka_password=PASSWORD))
    assert isinstance(security, SASLScram512) and security.use_ssl
    assert isinstance(faststream_security(settings(kafka_security_protocol="SASL_SSL", kafka_password=PASSWORD,
                                                   kafka_sasl_mechanism="SCRAM-SHA-256")), SASLScram256)


def test_tls_alone_checks_the_cluster_ca(tmp_path):
    from genline_stack.tls_proxy import make_certificates

    ca, _, _ = make_certificates(tmp_path)
    options = client_options(settings(kafka_security_protocol="SSL", kafka_ca_file=str(ca)))
    assert "sasl_mechanism" not in options and options["ssl_context"].get_ca_certs()
    security = faststream_security(settings(kafka_security_protocol="SSL", kafka_ca_file=str(ca)))
    assert type(security) is BaseSecurity and security.use_ssl


def test_sasl_without_a_password_and_production_without_sasl_ssl_are_refused_naming_the_setting():
    with pytest.raises(ValueError, match="GENLINE_KAFKA_PASSWORD must be set with SASL_SSL"):
        settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="GENLINE_KAFKA_SECURITY_PROTOCOL is PLAINTEXT: production needs SASL_SSL"):
        settings(environment="production")
    with pytest.raises(ValueError, match="GENLINE_KAFKA_PASSWORD is a placeholder"):
        settings(environment="production", kafka_security_protocol="SASL_SSL", kafka_password="CHANGE_ME")
