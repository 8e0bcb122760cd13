"""Where the embedded stack's servers listen, and what follows from it: the environment of a
service process and the settings of code that runs beside the stack (seeding, tests, tools),
each with its own credentials (genline_stack/credentials.py)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic_settings import BaseSettings

from genline_stack.credentials import SERVICES, object_store_env, public_keys, read_credentials, read_person
from services.common.identity import ServiceSigner
from services.common.releases import RELEASE

DEV_S3_KEY_ID = "genline-dev"
DEV_S3_SECRET = "genline-dev-secret-not-for-production"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    kafka_bootstrap: str
    database_url: str
    s3_endpoint_url: str
    s3_access_key_id: str = DEV_S3_KEY_ID
    s3_secret_access_key: str = DEV_S3_SECRET
    # The broker's timings where its defaults do not suit it (see ServiceSettings), and the
    # size at which the services rotate their topics on a broker without retention.
    kafka_fetch_max_wait_ms: int | None = None
    bus_rotate_after_records: int | None = None
    bus_wake_on_publish: bool = False
    # Each service's own credentials (genline_stack/credentials.py); the URLs above are the
    # administrator's, for provisioning, tests and audits.
    credentials_dir: str | None = None
    # How Kafka clients reach the broker: SSL with the stack's CA where it serves TLS.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_ca_file: str | None = None

    def kafka_options(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client of the tests and tools."""
        from services.common.bus import tls_context

        options: dict[str, Any] = {"bootstrap_servers": self.kafka_bootstrap,
                                   "security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol == "SSL":
            options["ssl_context"] = tls_context(self.kafka_ca_file)
        return options

    def settings(self, settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
        """Settings for code that runs in this process (seeding, tests): a service's settings
        class gets that service's credentials, any other the administrator's."""
        service = settings_class.model_fields["service_name"].default
        values: dict[str, Any] = {k.removeprefix("GENLINE_").lower(): v for k, v in self.service_env(service).items()}
        if "service_keys" in values:
            values["service_keys"] = json.loads(values["service_keys"])
        return settings_class(**(values | overrides))

    def operator_settings(self, settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
        """Settings for the operators' tools that read every service's journal (the replays,
        the audits): the administrator's database login, not a service's, which reads its
        own schemas only."""
        return self.settings(settings_class, **({"database_url": self.database_url} | overrides))

    def person_settings(self, person: str, settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
        """Settings for the operator's or the auditor's tools (`person`: genline_stack.credentials.
        PEOPLE): their own database role, no service key, no data-key KEK unless given."""
        values: dict[str, Any] = {k.removeprefix("GENLINE_").lower(): v for k, v in self.service_env(None).items()}
        url = read_person(self.credentials_path(), person).database_url(self.database_url)
        return settings_class(**(values | {"database_url": url} | overrides))

    def signer(self, service: str) -> ServiceSigner:
        """Speaks as `service` on internal calls, for tools and tests that call internal APIs."""
        return ServiceSigner(service, read_credentials(self.credentials_path(), service).identity_key)

    def service_env(self, service: str | None = None) -> dict[str, str]:
        """Environment for a service process (see `services.common.settings`): with its own
        credentials when `service` names one of the five."""
        env = {
            # The embedded stack is where development's defaults live (the services'
            # own default is production).
            "GENLINE_ENVIRONMENT": "development",
            # A stack started here runs no older release beside this one: its events go out
            # whole (a rolling update's test lowers it for the new release's replicas).
            "GENLINE_EVENTS_COMPATIBLE_WITH": RELEASE,
            "GENLINE_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "GENLINE_DATABASE_URL": self.database_url,
            "GENLINE_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "GENLINE_S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "GENLINE_S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        # Tansu 0.6 on its in-memory log grants no producer ids (InitProducerId fails).
        env["GENLINE_KAFKA_IDEMPOTENT_PRODUCER"] = "false"
        if self.kafka_security_protocol != "PLAINTEXT":
            env["GENLINE_KAFKA_SECURITY_PROTOCOL"] = self.kafka_security_protocol
            if self.kafka_ca_file is not None:
                env["GENLINE_KAFKA_CA_FILE"] = self.kafka_ca_file
        if self.kafka_fetch_max_wait_ms is not None:
            env["GENLINE_KAFKA_FETCH_MAX_WAIT_MS"] = str(self.kafka_fetch_max_wait_ms)
        if self.bus_rotate_after_records is not None:
            env["GENLINE_BUS_ROTATE_AFTER_RECORDS"] = str(self.bus_rotate_after_records)
        if self.bus_wake_on_publish:
            env["GENLINE_BUS_WAKE_ON_PUBLISH"] = "true"
        if self.credentials_dir and service in SERVICES:
            env = self._with_own_credentials(env, service)
        return env

    def _with_own_credentials(self, env: dict[str, str], service: str) -> dict[str, str]:
        """`env` with the service's database login and keys, and its own object-store key
        instead of the stack's where it has one (none at all where it uses no store)."""
        directory = self.credentials_path()
        env = env | read_credentials(directory, service).env(self.database_url, public_keys(directory), directory=directory)
        own_key = object_store_env(directory, service)
        if own_key is not None:
            env = {k: v for k, v in env.items() if not k.startswith("GENLINE_S3_") or k == "GENLINE_S3_ENDPOINT_URL"}
            env |= own_key
        return env

    def credentials_path(self) -> Path:
        """The folder of every service's and person's credentials (genline_stack/credentials.py)."""
        if self.credentials_dir is None:
            raise ValueError("these endpoints carry no credentials: the stack made none")
        return Path(self.credentials_dir)
