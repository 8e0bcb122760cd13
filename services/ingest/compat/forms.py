"""The multipart form of `POST /v1/images/edits` as OpenAI's clients send it: text fields,
the photo to edit (`image`, or `image[]` for several) and a `mask`; the body is refused (413)
as soon as it passes its bound, and read whole only within it."""

from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

from fastapi import Request

from services.common.problems import Problem
from services.ingest.deps import read_capped

# Boundaries and part headers around the files, and the text fields beside them.
FORM_OVERHEAD = 256 * 1024
INTEGERS = ("n", "output_compression", "partial_images", "candidates", "seed", "deadline_s")
BOOLEANS = ("stream",)


@dataclass
class EditForm:
    fields: dict[str, str] = field(default_factory=dict)
    images: list[bytes] = field(default_factory=list)
    mask: bytes | None = None

    def options(self) -> dict[str, Any]:
        """The text fields with the types the JSON API has: a number that is none is refused (400)."""
        values: dict[str, Any] = dict(self.fields)
        for name in INTEGERS:
            if name in values:
                try:
                    values[name] = int(values[name])
                except ValueError:
                    raise Problem(status=400, slug="invalid-type", detail=f"{name} must be an integer, not {values[name]!r}",
                                  extra={"param": name}) from None
        for name in BOOLEANS:
            if name in values:
                values[name] = values[name].lower() == "true"
        return values


def too_large(limit: int) -> Problem:
    return Problem(status=413, slug="request-too-large", detail=f"the form is larger than {limit} bytes; send one photo of at most the"
                   " upload limit", extra={"param": "image"})


async def edit_form(request: Request, max_image_bytes: int) -> EditForm:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Problem(status=400, slug="invalid-content-type", detail="send the edit as multipart/form-data, as OpenAI's clients do",
                      extra={"param": "image"})
    limit = max_image_bytes + FORM_OVERHEAD
    body = await read_capped(request, limit, refused=lambda _size: too_large(limit))
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    form = EditForm()
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name in ("image", "image[]"):
            form.images.append(data)
        elif name == "mask":
            form.mask = data
        elif isinstance(name, str):
            form.fields[name] = data.decode("utf-8", errors="replace")
    return form
