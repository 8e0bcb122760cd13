"""`verify_file`: what a file proves, asked of a Genline deployment's `POST /v1/verify`, which
anyone may call: its Content Credentials checked against the deployment's trust anchor, its
invisible watermark when the credentials are gone, AI-generated there or not, intact or
altered. With your API key (argument or GENLINE_API_KEY) the answer names the job and its
receipt when the file is one of yours.

    answer = verify_file("image.png", base_url="https://genline.example.com")
    answer["generated_here"], answer["intact"], answer["summary"]
"""

import os
from os import PathLike
from pathlib import Path
from typing import Any

import httpx

from genline_client._calls import DEFAULT_API_URL, USER_AGENT
from genline_client.errors import APIConnectionError, raise_for_problem


def verify_file(file: "str | PathLike[str] | bytes", *, base_url: str | None = None, api_key: str | None = None,
                timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """The deployment's answer for `file` (a path, or the bytes), as `POST /v1/verify` gives it."""
    data = bytes(file) if isinstance(file, (bytes, bytearray)) else Path(file).read_bytes()
    base_url = (base_url or os.environ.get("GENLINE_API_URL") or DEFAULT_API_URL).rstrip("/")
    api_key = api_key or os.environ.get("GENLINE_API_KEY")
    headers = {"Content-Type": "application/octet-stream", "User-Agent": USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        with httpx.Client(base_url=base_url, timeout=timeout, transport=transport) as http:
            response = http.post("/v1/verify", content=data, headers=headers)
    except httpx.TransportError as error:
        raise APIConnectionError(f"POST {base_url}/v1/verify: {error!r}") from error
    raise_for_problem(response)
    return response.json()
