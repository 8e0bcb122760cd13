"""Least privilege on the object store: on the embedded stack every service has a key of its
own, allowed only what the service does in each bucket (genline_stack/credentials.py,
BUCKET_ACTIONS), and refused the rest by the store itself; the ledger holds no key at all.
The production policies (deploy/k8s/object-store/policies.json) grant the same."""

import json
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from genline_stack.credentials import BUCKET_ACTIONS
from services.common.settings import ServiceSettings
from services.common.storage import Blob
from services.ledger.settings import LedgerSettings

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = ServiceSettings.model_fields["internal_bucket"].default
PUBLIC = ServiceSettings.model_fields["public_bucket"].default
BUCKETS = {"internal": INTERNAL, "public": PUBLIC}


def client_of(endpoints, service: str):
    env = endpoints.service_env(service)
    return boto3.client("s3", endpoint_url=endpoints.s3_endpoint_url, region_name="us-east-1",
                        aws_access_key_id=env["GENLINE_S3_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["GENLINE_S3_SECRET_ACCESS_KEY"],
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


def allowed(operation, **arguments) -> bool:
    """Whether the store lets `operation(**arguments)` through; any refusal but AccessDenied fails."""
    try:
        operation(**arguments)
    except ClientError as error:
        assert error.response["Error"]["Code"] in ("AccessDenied", "403"), error.response
        return False
    return True


@pytest.fixture(scope="module")
def objects(endpoints, object_store) -> dict[str, str]:
    """An object in each bucket, written with the stack's own key."""
    if endpoints.service_env("scorer")["GENLINE_S3_ACCESS_KEY_ID"] == endpoints.s3_access_key_id:
        pytest.skip("this stack's object store has one key (the embedded stack makes one per service)")
    import asyncio

    key = f"least-privilege/{uuid.uuid4().hex}"
    for bucket in BUCKETS.values():
        asyncio.run(object_store.put(bucket, key, content=Blob(b"x" * 100, "application/octet-stream")))
    return dict.fromkeys(BUCKETS, key)


@pytest.mark.parametrize("service", sorted(BUCKET_ACTIONS))
def test_each_service_may_do_in_each_bucket_what_it_does_and_nothing_else(endpoints, objects, service):
    s3 = client_of(endpoints, service)
    for name, bucket in BUCKETS.items():
        granted = set(BUCKET_ACTIONS[service].get(name, ()))
        key = objects[name]
        assert allowed(s3.get_object, Bucket=bucket, Key=key) == ("Read" in granted), (service, name, "Read")
        assert allowed(s3.list_objects_v2, Bucket=bucket, Prefix="least-privilege/") == ("List" in granted), \
            (service, name, "List")
        written = f"least-privilege/{service}-{uuid.uuid4().hex}"
        assert allowed(s3.put_object, Bucket=bucket, Key=written, Body=b"y") == ("Write" in granted), \
            (service, name, "Write")


def test_the_scorer_cannot_write_candidates_and_the_router_cannot_touch_delivered_images(endpoints, objects):
    """The cases the policies exist for, spelt out."""
    scorer, router = client_of(endpoints, "scorer"), client_of(endpoints, "router")
    assert not allowed(scorer.put_object, Bucket=INTERNAL, Key=objects["internal"], Body=b"forged")
    assert not allowed(scorer.delete_object, Bucket=INTERNAL, Key=objects["internal"])
    assert not allowed(router.get_object, Bucket=PUBLIC, Key=objects["public"])
    assert not allowed(router.put_object, Bucket=PUBLIC, Key=objects["public"], Body=b"forged")
    assert not allowed(client_of(endpoints, "ingest").put_object, Bucket=PUBLIC, Key="x", Body=b"forged")
    assert scorer.get_object(Bucket=INTERNAL, Key=objects["internal"])["Body"].read() == b"x" * 100


def test_the_ledger_holds_no_object_store_key_and_needs_none(endpoints):
    env = endpoints.service_env("ledger")
    assert not {k for k in env if k.startswith("GENLINE_S3_") and k != "GENLINE_S3_ENDPOINT_URL"}
    settings = endpoints.settings(LedgerSettings)
    assert settings.s3_access_key_id is None and settings.s3_secret_access_key is None


def test_a_service_that_uses_the_store_refuses_to_start_without_its_key():
    from services.scorer.settings import ScorerSettings

    with pytest.raises(ValueError, match="GENLINE_S3_ACCESS_KEY_ID and GENLINE_S3_SECRET_ACCESS_KEY must be set"):
        ScorerSettings(environment="test", database_url="postgresql://unused")


def test_the_production_policies_grant_what_the_embedded_stack_grants():
    """deploy/k8s/object-store/policies.json: an IAM policy per service, in S3's own actions."""
    policies = json.loads((ROOT / "deploy/k8s/object-store/policies.json").read_text())
    meaning = {"Read": {"s3:GetObject"}, "Write": {"s3:PutObject", "s3:DeleteObject"}, "List": {"s3:ListBucket"}}
    assert set(policies) == set(BUCKET_ACTIONS)  # the ledger has none
    for service, policy in policies.items():
        granted: dict[str, set[str]] = {}
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            for resource in statement["Resource"]:
                bucket = resource.removeprefix("arn:aws:s3:::").split("/")[0].replace("${internal}", "internal") \
                    .replace("${public}", "public")
                granted.setdefault(bucket, set()).update(statement["Action"])
        expected = {bucket: set().union(*(meaning[a] for a in actions))
                    for bucket, actions in BUCKET_ACTIONS[service].items()}
        assert granted == expected, service
