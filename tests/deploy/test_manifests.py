"""Every kustomization renders, and every object it renders is one a cluster accepts:
validated offline against the Kubernetes schemas (kubernetes-validate, strict) and, for the
custom resources, against schemas of their CRDs (KEDA and the Prometheus Operator from the
pydantic models of their CRDs, Strimzi's KafkaTopic from tests/deploy/schemas/). Unknown
fields are refused everywhere, as `kubectl apply`'s strict field validation does."""

import functools
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
SCHEMAS = Path(__file__).with_name("schemas")
SERVICES = ("ingest", "ledger", "router", "scorer", "delivery")
KUBERNETES_VERSION = "1.31.0"  # the oldest release the manifests must work on
# Components are rendered through the overlays that use them.
KUSTOMIZATIONS = sorted(p.parent for p in K8S.rglob("kustomization.yaml")
                        if yaml.safe_load(p.read_text()).get("kind", "Kustomization") == "Kustomization")


def render(directory: Path) -> list[dict]:
    kubectl = Path(sys.executable).with_name("kubectl")
    result = subprocess.run([str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{directory.relative_to(ROOT)} does not render: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def strict(schema):
    """Refuse fields a schema does not declare (pydantic's schemas allow them)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


@functools.cache
def custom_resource_schemas() -> dict[tuple[str, str], dict]:
    from cloudcoil.models.keda import v1alpha1 as keda
    from cloudcoil.models.prometheus_operator import v1 as monitoring

    models = {("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
              ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
              ("monitoring.coreos.com/v1", "PodMonitor"): monitoring.PodMonitor,
              ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule}
    schemas = {key: strict(model.model_json_schema(by_alias=True)) for key, model in models.items()}
    for path in SCHEMAS.glob("*.json"):
        group_version, kind = path.stem.replace("_", "/", 1).rsplit("_", 1)
        schemas[(group_version, kind)] = json.loads(path.read_text())
    return schemas


def problems_of(obj: dict) -> list[str]:
    """What a cluster would refuse in `obj` (empty when it accepts it)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    name = f"{key[1]} {obj.get('metadata', {}).get('name')}"
    if key in custom_resource_schemas():
        validator = jsonschema.Draft202012Validator(custom_resource_schemas()[key])
        return [f"{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {key[0]} {key[1]} (not a Kubernetes kind, nor a known CRD)"]
    return []


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_renders_objects_a_cluster_accepts(directory):
    objects = render(directory)
    assert objects
    problems = [problem for obj in objects for problem in problems_of(obj)]
    assert not problems, "\n".join(problems)


def example_secrets(names=SERVICES) -> dict[str, dict]:
    """The Secrets (genline-<name>) of the example, by service (or person: operator, auditor)."""
    return {s["metadata"]["labels"]["app.kubernetes.io/name"]: s
            for s in yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
            if s["metadata"]["name"] == f"genline-{s['metadata']['labels']['app.kubernetes.io/name']}"
            and s["metadata"]["labels"]["app.kubernetes.io/name"] in names}


def test_only_ingest_mounts_the_key_encryption_key():
    kek = [s for s in yaml.safe_load_all((K8S / "secret.example.yaml").read_text())
           if s["metadata"]["name"] == "genline-ingest-kek"]
    assert kek and problems_of(kek[0]) == []
    mounting = {d["metadata"]["name"] for d in render(K8S / "base") if d["kind"] == "Deployment"
                for v in d["spec"]["template"]["spec"].get("volumes", ()) if v.get("secret", {}).get("secretName")
                == "genline-ingest-kek"}
    assert mounting == {"ingest"}


def test_the_example_secrets_are_valid_secrets_one_per_service_each_mounted_by_its_service_only():
    secrets = example_secrets()
    assert set(secrets) == set(SERVICES)
    assert all(problems_of(secret) == [] for secret in secrets.values())
    for deployment in (o for o in render(K8S / "base") if o["kind"] == "Deployment"):
        name, pod = deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]
        mounted = {ref["secretRef"]["name"] for c in pod["containers"] for ref in c.get("envFrom", ())
                   if "secretRef" in ref}
        assert mounted == {f"genline-{name}"}, name
        assert pod["serviceAccountName"] == f"genline-{name}" and pod["automountServiceAccountToken"] is False


def test_only_the_router_holds_provider_keys_only_ingest_the_receipt_key_only_the_ledger_the_payment_secret():
    holders = {key: {s for s, secret in example_secrets().items() if key in secret["stringData"]}
               for key in ("GENLINE_PROVIDER_SECRETS", "GENLINE_RECEIPT_SIGNING_KEY", "GENLINE_PAYMENT_WEBHOOK_SECRET",
                           "GENLINE_ADMIN_TOKENS", "GENLINE_SERVICE_KEY")}
    assert holders == {"GENLINE_PROVIDER_SECRETS": {"router"}, "GENLINE_RECEIPT_SIGNING_KEY": {"ingest"},
                       "GENLINE_PAYMENT_WEBHOOK_SECRET": {"ledger"}, "GENLINE_ADMIN_TOKENS": {"ingest", "ledger"},
                       "GENLINE_SERVICE_KEY": set(SERVICES)}
    for service, secret in example_secrets().items():
        assert f"genline_{service}:" in secret["stringData"]["GENLINE_DATABASE_URL"]


def test_probes_and_metrics_use_the_ops_port_which_only_monitoring_reaches():
    objects = render(K8S / "base")
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert {p["name"]: p["containerPort"] for p in container["ports"]}["ops"] == 9090
        assert all(container[probe]["httpGet"]["port"] == "ops"
                   for probe in ("startupProbe", "livenessProbe", "readinessProbe"))
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        for rule in policy["spec"]["ingress"]:
            ports = {p["port"] for p in rule["ports"]}
            sources = rule.get("from")
            if 9090 in ports:
                assert ports == {9090} and sources == [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "monitoring"}}}], policy["metadata"]["name"]
            if sources is None:  # open to all: only the public HTTP ports
                assert ports == {8080} and policy["metadata"]["name"] in ("ingest", "ledger", "router")


def test_a_broken_manifest_is_refused():
    """The validation can fail: a misspelt field, a wrong type, an unknown kind."""
    deployment = next(o for o in render(K8S / "base") if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    deployment["spec"]["replica"] = 2
    assert len(problems_of(deployment)) >= 1
    topic = render(K8S / "kafka")[0]
    topic["spec"]["partitions"] = "six"
    assert problems_of(topic)
    assert problems_of({"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic", "metadata": {"name": "x"}})


# ---- what the objects must say, beyond being valid ----------------------------------


@functools.cache
def base() -> tuple[dict, ...]:
    return tuple(render(K8S / "base"))


def of_kind(kind: str, objects=None) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in (objects or base()) if o["kind"] == kind}


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_of(deployment: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


def test_every_pod_has_time_to_drain_before_it_is_killed():
    from services.common.runtime import GRPC_DRAIN_S, HTTP_DRAIN_S, OUTBOX_DRAIN_S, STOP_GRACE_S
    from services.router.app import ATTEMPT_DRAIN_S

    extra = {"ledger": GRPC_DRAIN_S, "router": GRPC_DRAIN_S + ATTEMPT_DRAIN_S}
    assert STOP_GRACE_S >= HTTP_DRAIN_S + OUTBOX_DRAIN_S + max(extra.values())  # a process exits when its drains are done
    for name, deployment in of_kind("Deployment").items():
        worst = HTTP_DRAIN_S + OUTBOX_DRAIN_S + extra.get(name, 0)
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > max(worst, STOP_GRACE_S), name


def test_every_workload_has_a_network_policy():
    policies = of_kind("NetworkPolicy").values()
    for name, deployment in of_kind("Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["podSelector"]["matchLabels"].items() <= labels.items() for p in policies), name


@pytest.mark.parametrize("service", ["ledger", "ingest"])
def test_the_admin_api_has_its_own_port_that_only_the_namespace_reaches(service):
    deployment = of_kind("Deployment")[service]
    admin_port = int(env_of(deployment)["GENLINE_ADMIN_PORT"]["value"])
    assert {"name": "admin", "containerPort": admin_port, "protocol": "TCP"} in container(deployment)["ports"]
    rules = of_kind("NetworkPolicy")[service]["spec"]["ingress"]
    admitting = [rule for rule in rules if any(p["port"] == admin_port for p in rule["ports"])]
    assert admitting and all(rule.get("from") == [{"podSelector": {}}] for rule in admitting)
    ingress = of_kind("Ingress")["ingest"]
    backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert all(b["port"] != {"number": admin_port} and b["port"] != {"name": "admin"} for b in backends)


def test_the_ingress_takes_the_largest_job_the_api_accepts():
    from services.ingest.inputs.screening import MAX_REFERENCE_BASE64

    limit = of_kind("Ingress")["ingest"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert limit.endswith("m") and int(limit[:-1]) * 1024 * 1024 > MAX_REFERENCE_BASE64 + 64 * 1024


def test_scorer_threads_follow_its_cpu_limit():
    source = env_of(of_kind("Deployment")["scorer"])["GENLINE_SCORING_THREADS"]["valueFrom"]["resourceFieldRef"]
    assert source["resource"] == "limits.cpu" and source["containerName"] == "scorer"


def test_delivery_renders_with_a_worker_a_core_of_its_cpu_limit():
    delivery = of_kind("Deployment")["delivery"]
    source = env_of(delivery)["GENLINE_RENDER_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert source["resource"] == "limits.cpu" and source["containerName"] == "delivery"


def test_the_providers_config_map_is_a_registry_the_router_loads(tmp_path):
    from services.router.providers.registry import load_registry

    (config_map,) = [c for name, c in of_kind("ConfigMap").items() if name.startswith("genline-providers")]
    router = of_kind("Deployment")["router"]
    mounted = {v["name"]: v for v in router["spec"]["template"]["spec"]["volumes"]}["providers"]
    assert mounted["configMap"]["name"] == config_map["metadata"]["name"]
    path = Path(env_of(router)["GENLINE_PROVIDERS_PATH"]["value"])
    (tmp_path / path.name).write_text(config_map["data"][path.name])
    assert load_registry(tmp_path / path.name).providers


def test_the_example_secret_names_every_key_and_cannot_be_applied_unedited(monkeypatch):
    """Its values, as the pods get them (environment variables), are refused in production."""
    from services.delivery.settings import DeliverySettings
    from services.ingest.settings import IngestSettings
    from services.ledger.settings import LedgerSettings
    from services.router.settings import RouterSettings
    from services.scorer.settings import ScorerSettings

    settings_of = {"ledger": LedgerSettings, "router": RouterSettings, "ingest": IngestSettings,
                   "scorer": ScorerSettings, "delivery": DeliverySettings}
    config = next(o for o in render(K8S / "base") if o["kind"] == "ConfigMap" and o["metadata"]["name"] ==
                  "genline-config")["data"]
    for service, secret in example_secrets().items():
        with monkeypatch.context() as env:
            for name, value in (config | secret["stringData"]).items():
                env.setenv(name, value)
            env.setenv("GENLINE_ENVIRONMENT", "production")
            with pytest.raises(ValueError, match="(is a placeholder|is not an Ed25519)"):
                settings_of[service]()


def test_the_ledger_topic_is_kept_for_ever_and_topics_use_strimzi_v1():
    topics = {t["spec"]["topicName"]: t for t in render(K8S / "kafka") if t["kind"] == "KafkaTopic"}
    assert {t["apiVersion"] for t in topics.values()} == {"kafka.strimzi.io/v1"}
    assert topics["genline.ledger.v1"]["spec"]["config"]["retention.ms"] == -1


def test_each_service_is_a_kafka_user_that_may_write_its_own_topic_and_read_only_what_it_consumes():
    from services.common.contracts import SUBSCRIPTIONS, consumer_group, topic_of

    users = {u["metadata"]["name"]: u for u in render(K8S / "kafka") if u["kind"] == "KafkaUser"}
    assert set(users) == {f"genline-{s}" for s in SERVICES} | {"genline-operator", "genline-auditor"}
    for service, publishers in SUBSCRIPTIONS.items():
        spec = users[f"genline-{service}"]["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512"
        granted = grants_of(spec)
        writes = {name for (kind, name), ops in granted.items() if kind == "topic" and {"Write", "All"} & ops}
        reads = {name for (kind, name), ops in granted.items() if kind == "topic" and {"Read", "All"} & ops}
        groups = {name for (kind, name), ops in granted.items() if kind == "group" and {"Read", "All"} & ops}
        assert writes == {topic_of(service)} | {topic_of(p) + ".dlq" for p in publishers}, service
        assert reads == {topic_of(p) for p in publishers}, service
        assert groups == {consumer_group("genline", service)}, service


def grants_of(user_spec: dict) -> dict[tuple[str, str], set[str]]:
    """A KafkaUser's operations by (resource type, name); only literal allow rules exist."""
    granted: dict[tuple[str, str], set[str]] = {}
    for acl in user_spec["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow" and acl["resource"].get("patternType", "literal") == "literal"
        key = (acl["resource"]["type"], acl["resource"].get("name", ""))
        granted.setdefault(key, set()).update(acl["operations"])
    return granted


WRITING_OPERATIONS = {"Write", "Create", "Delete", "Alter", "AlterConfigs", "IdempotentWrite", "All"}


def test_the_auditor_may_only_read_the_topics_and_the_operator_may_not_read_them():
    from services.common.contracts import PUBLISHERS, topic_of

    users = {u["metadata"]["name"]: u["spec"] for u in render(K8S / "kafka") if u["kind"] == "KafkaUser"}
    auditor = grants_of(users["genline-auditor"])
    assert auditor == {("topic", topic_of(p)): {"Read", "Describe"} for p in PUBLISHERS}
    assert not any(WRITING_OPERATIONS & ops for ops in auditor.values())
    operator = grants_of(users["genline-operator"])
    assert {name for (kind, name), ops in operator.items() if kind == "topic" and "Write" in ops} == {
        topic_of(p) for p in PUBLISHERS}
    assert not any({"Read", "All"} & ops for ops in operator.values())


# ---- the operator's and the auditor's own identities ------------------------------------


@functools.cache
def operators() -> tuple[dict, ...]:
    return tuple(render(K8S / "operators"))


@pytest.mark.parametrize("person", ["operator", "auditor"])
def test_each_person_runs_as_its_own_identity_with_its_own_secret_and_no_service_key(person):
    [job] = [o for o in operators() if o["kind"] == "Job" and o["metadata"]["labels"]["app.kubernetes.io/name"] == person]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["suspend"] is True  # a template: applying it runs nothing
    assert pod["serviceAccountName"] == f"genline-{person}" and pod["automountServiceAccountToken"] is False
    assert of_kind("ServiceAccount", operators())[f"genline-{person}"]["automountServiceAccountToken"] is False
    [secret_ref] = [ref["secretRef"]["name"] for ref in pod["containers"][0]["envFrom"] if "secretRef" in ref]
    assert secret_ref == f"genline-{person}"
    secret = example_secrets((person,))[person]
    assert problems_of(secret) == []
    assert set(secret["stringData"]) == {"GENLINE_DATABASE_URL", "GENLINE_KAFKA_USERNAME", "GENLINE_KAFKA_PASSWORD"}
    assert f"genline_{person}:" in secret["stringData"]["GENLINE_DATABASE_URL"]
    assert secret["stringData"]["GENLINE_KAFKA_USERNAME"] == f"genline-{person}"


def test_the_operator_job_rebuilds_the_bus_and_the_auditor_job_replays():
    from genline_cli.main import command_tree

    jobs = {o["metadata"]["labels"]["app.kubernetes.io/name"]: o for o in operators() if o["kind"] == "Job"}
    args = {person: " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"]) for person, job in jobs.items()}
    assert args["operator"] == "genline bus rebuild --all"
    assert {"genline replay ledger", "genline replay audit", "genline replay jobs"} <= {
        part.strip() for part in args["auditor"].removeprefix("sh -c ").split("&&")}
    tree = command_tree()
    for command in ("bus rebuild --all", "replay ledger", "replay audit", "replay jobs"):
        assert tree.parser.parse_args(command.split()).run  # each is a command the image's CLI has


def test_the_settings_of_the_operator_and_the_auditor_need_no_service_key_and_no_object_store(monkeypatch):
    from services.common.bus.rebuild import BusSettings
    from services.common.settings import AuditorSettings

    config = next(o for o in base() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "genline-config")["data"]
    for person, settings_class in (("operator", BusSettings), ("auditor", AuditorSettings)):
        with monkeypatch.context() as env:
            for name, value in (config | example_secrets((person,))[person]["stringData"]).items():
                env.setenv(name, value.replace("CHANGE_ME", "a-real-secret-of-some-length"))
            env.setenv("GENLINE_ENVIRONMENT", "production")
            settings = settings_class()
        assert settings.service_key is None and settings.s3_access_key_id is None
        assert settings.kafka_username == f"genline-{person}" and settings.kafka_security_protocol == "SASL_SSL"


# ---- KEDA reads the lag as each service's own KafkaUser ----------------------------------


def test_every_scaled_object_authenticates_with_a_trigger_authentication_from_its_services_secret():
    objects = render(K8S / "keda")
    authentications = of_kind("TriggerAuthentication", objects)
    scaled = of_kind("ScaledObject", objects)
    assert scaled
    for name, obj in scaled.items():
        for trigger in obj["spec"]["triggers"]:
            assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable", name
            auth = authentications[trigger["authenticationRef"]["name"]]
            refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
            assert refs == {"username": (f"genline-{name}", "GENLINE_KAFKA_USERNAME"),
                            "password": (f"genline-{name}", "GENLINE_KAFKA_PASSWORD"),
                            "ca": ("genline-kafka-ca", "ca.crt")}, name
            assert example_secrets()[name]["stringData"]["GENLINE_KAFKA_USERNAME"] == f"genline-{name}"
            assert trigger["metadata"]["consumerGroup"] == f"genline-{name}"


def test_the_ledger_holds_no_object_store_key():
    assert not {k for k in example_secrets()["ledger"]["stringData"] if k.startswith("GENLINE_S3_")}
    assert all("GENLINE_S3_ACCESS_KEY_ID" in example_secrets()[s]["stringData"] for s in SERVICES if s != "ledger")


def test_the_services_reach_kafka_over_tls_as_their_own_user():
    config = next(o for o in render(K8S / "base") if o["kind"] == "ConfigMap" and o["metadata"]["name"] ==
                  "genline-config")["data"]
    assert config["GENLINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and config["GENLINE_KAFKA_CA_FILE"]
    for service, secret in example_secrets().items():
        assert "GENLINE_KAFKA_PASSWORD" in secret["stringData"], service
    for deployment in (o for o in render(K8S / "base") if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        ca = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "genline-kafka-ca"]
        mounts = [m for m in pod["containers"][0]["volumeMounts"] if ca and m["name"] == ca[0]["name"]]
        assert mounts and config["GENLINE_KAFKA_CA_FILE"].startswith(mounts[0]["mountPath"]), deployment["metadata"]


def test_the_connection_budget_at_the_most_replicas_fits_the_max_connections_written_down():
    """docs/guides/kubernetes.md: each replica's pool plus its dedicated connections, at the most
    replicas the HPA and the ScaledObjects allow, plus 10 kept for operators, within the
    `max_connections` it asks of PostgreSQL."""
    import re

    from services.common.settings import ServiceSettings

    written = int(re.search(r"max_connections = (\d+)", (ROOT / "docs/guides/kubernetes.md").read_text()).group(1))
    config = next(o for o in render(K8S / "base") if o["kind"] == "ConfigMap" and o["metadata"]["name"] ==
                  "genline-config")["data"]
    pool = int(config.get("GENLINE_DATABASE_POOL_SIZE", ServiceSettings.model_fields["database_pool_size"].default))
    most = {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicas"] for o in render(K8S / "base")
            if o["kind"] == "HorizontalPodAutoscaler"}
    most |= {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicaCount"] for o in render(K8S / "keda")
             if o["kind"] == "ScaledObject"}
    assert set(most) == set(SERVICES)
    dedicated = 2  # the listening connection (services/common/listening.py), the journal's lock
    total = sum(replicas * (pool + dedicated) for replicas in most.values())
    assert total + 10 <= written, f"{total} connections at the most replicas; docs/guides/kubernetes.md says {written}"


def test_the_ingress_serves_the_api_the_receipt_keys_and_the_console_and_nothing_internal():
    [ingress] = [o for o in render(K8S / "base") if o["kind"] == "Ingress"]
    paths = {(p["path"], p["pathType"]): p["backend"]["service"]["name"]
             for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert paths == {("/v1", "Prefix"): "ingest", ("/v1/webhooks/payments", "Exact"): "ledger",
                     ("/.well-known/genline-keys.json", "Exact"): "ingest",
                     ("/.well-known/genline-c2pa-anchors.pem", "Exact"): "ingest", ("/console", "Prefix"): "ingest"}
    assert all(p["backend"]["service"]["port"]["name"] == "http"
               for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"])


def test_images_carry_the_release_version_never_latest():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for directory in KUSTOMIZATIONS:
        for obj in render(directory):
            for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", ()):
                image = container["image"]
                assert "@sha256:" in image or image.endswith(f":{version}"), (directory.name, image)


def settings_classes() -> dict[str, type]:
    from services.delivery.settings import DeliverySettings
    from services.ingest.settings import IngestSettings
    from services.ledger.settings import LedgerSettings
    from services.router.settings import RouterSettings
    from services.scorer.settings import ScorerSettings

    return {"ledger": LedgerSettings, "router": RouterSettings, "ingest": IngestSettings, "scorer": ScorerSettings,
            "delivery": DeliverySettings}


def test_every_setting_a_service_is_given_in_the_cluster_is_one_it_reads():
    """A name the service's settings do not know is ignored in silence: a typo, or a setting
    renamed in the code and not in the manifests, would change nothing."""
    config = of_kind("ConfigMap")["genline-config"]["data"]
    for service, settings_class in settings_classes().items():
        known = {f"GENLINE_{name.upper()}" for name in settings_class.model_fields}
        given = set(config) | set(env_of(of_kind("Deployment")[service])) | \
            set(example_secrets([service])[service]["stringData"])
        unread = sorted(name for name in given if name.startswith("GENLINE_") and name not in known)
        assert unread == [], f"{service} is given settings it does not read: {unread}"


def test_the_cluster_starts_with_the_packaged_provider_registry():
    """Every provider the templates' stages, subjects and clips need is in the ConfigMap, as packaged."""
    (config_map,) = [c for name, c in of_kind("ConfigMap").items() if name.startswith("genline-providers")]
    (registry,) = config_map["data"].values()
    assert yaml.safe_load(registry) == yaml.safe_load((ROOT / "services/router/providers.yaml").read_text())


def test_ingest_believes_only_the_ingress_and_sends_invitations_through_smtp(monkeypatch):
    from services.common.http_headers import networks
    from services.ingest.team_settings import TeamSettings

    env = {name: e["value"] for name, e in env_of(of_kind("Deployment")["ingest"]).items() if "value" in e}
    assert networks(json.loads(env["GENLINE_TRUSTED_PROXIES"])) and env["GENLINE_FORWARDED_HEADER"] == "x-forwarded-for"
    for name, value in (env | example_secrets(["ingest"])["ingest"]["stringData"]).items():
        monkeypatch.setenv(name, value)
    team = TeamSettings()
    assert team.smtp_host and team.smtp_username and team.smtp_password is not None and team.public_url
