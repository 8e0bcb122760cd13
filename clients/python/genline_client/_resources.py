"""What the batch and evaluation calls send and how their answers are read, shared by the sync
and async clients (as `_calls` is for jobs)."""

import base64
import json
from os import PathLike
from pathlib import Path
from typing import Any

from genline_client._calls import Call, without_none

BATCH_ENDED = ("completed", "failed", "expired", "cancelled")
EVALUATION_ENDED = ("completed", "failed")
BOUNDARY = "genline-batch-file"


def jsonl_of(lines: Any) -> bytes:
    """A batch's input: a JSONL file's path, its bytes, or the requests as dicts (each with its
    `custom_id`, and `body`; `method` and `url` default to POST and the batch's endpoint)."""
    if isinstance(lines, bytes):
        return lines
    if isinstance(lines, str | PathLike):
        return Path(lines).read_bytes()
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def with_defaults(lines: Any, endpoint: str) -> Any:
    if isinstance(lines, bytes | str | PathLike):
        return lines
    return [{"method": "POST", "url": endpoint} | line for line in lines]


def upload_file(content: bytes, filename: str) -> Call:
    """`POST /v1/files` (purpose batch), multipart as OpenAI's clients send it."""
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n").encode()
    body = head + content + f"\r\n--{BOUNDARY}--\r\n".encode()
    return Call(method="POST", path="/v1/files", content=body,
                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})


def create_batch(file_id: str, endpoint: str, *, metadata: dict[str, str] | None) -> Call:
    return Call(method="POST", path="/v1/batches", json=without_none({"input_file_id": file_id, "endpoint": endpoint,
                                                          "completion_window": "24h", "metadata": metadata}))


def batch_id_of(batch: Any) -> str:
    return batch if isinstance(batch, str) else str(batch["id"])


def image_source(image: Any) -> dict[str, Any]:
    """An image to evaluate: a URL, a path or bytes (sent as base64), or a source as the API
    names it (`{"upload_id": …}`, `{"delivered": {"job_id": …, "n": 1}}`)."""
    if isinstance(image, dict):
        return image
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return {"url": image}
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return {"b64": base64.b64encode(data).decode()}


def evaluation_body(images: list[Any], options: dict[str, Any]) -> dict[str, Any]:
    references = [image_source(r) for r in options.pop("references", None) or []]
    return without_none({"images": [image_source(i) for i in images], "references": references or None} | options)
