"""How every Kafka client of a service proves itself and protects the wire: TLS and
SASL/SCRAM from the service's settings, in one place, for FastStream's broker and for every
aiokafka producer, consumer and admin client (the relay, the journal, the replays, the bus
tools).

On Kubernetes each service is a Strimzi `KafkaUser` (deploy/k8s/kafka/users.yaml) whose
ACLs let it write its own topic only, read what it consumes, and use its own consumer
groups; the password comes from the Secret Strimzi makes for that user, the cluster's CA
from the Secret Strimzi makes for the cluster.
"""

import functools
import ssl
from typing import Any

from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from services.common.settings import ServiceSettings

TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


@functools.cache
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client's TLS, checking the broker against `ca_file` (the system's CAs when None)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def ssl_context_of(settings: ServiceSettings) -> ssl.SSLContext | None:
    return tls_context(settings.kafka_ca_file) if settings.kafka_security_protocol in TLS_PROTOCOLS else None


def sasl_login(settings: ServiceSettings) -> tuple[str, str]:
    """The user name and password a SASL protocol logs in with (the settings refuse one without)."""
    if settings.kafka_username is None or settings.kafka_password is None:
        raise ValueError(f"{settings.kafka_security_protocol} needs GENLINE_KAFKA_USERNAME and GENLINE_KAFKA_PASSWORD")
    return settings.kafka_username, settings.kafka_password.get_secret_value()


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client: where the brokers are and how to log in."""
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap,
                               "security_protocol": settings.kafka_security_protocol}
    if (context := ssl_context_of(settings)) is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        username, password = sasl_login(settings)
        options |= {"sasl_mechanism": settings.kafka_sasl_mechanism, "sasl_plain_username": username,
                    "sasl_plain_password": password}
    return options


def compression(settings: ServiceSettings) -> str | None:
    return None if settings.kafka_compression_type == "none" else settings.kafka_compression_type


def new_topic(settings: ServiceSettings, name: str, *, partitions: int) -> Any:  # an aiokafka NewTopic
    """A topic this service creates: as many replicas as configured, min ISR one less."""
    from aiokafka.admin import NewTopic

    replicas = settings.kafka_replication_factor
    return NewTopic(name, partitions, replicas, topic_configs={"min.insync.replicas": str(max(1, replicas - 1))})


def faststream_security(settings: ServiceSettings) -> BaseSecurity | None:
    """The same for FastStream's KafkaBroker (its consumers)."""
    protocol, context = settings.kafka_security_protocol, ssl_context_of(settings)
    if protocol in SASL_PROTOCOLS:
        scram = SASLScram512 if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
        return scram(*sasl_login(settings), ssl_context=context, use_ssl=protocol == "SASL_SSL")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None
