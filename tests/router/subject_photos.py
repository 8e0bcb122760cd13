"""Subjects for the router's tests, made of real photos: skimage's astronaut (Eileen Collins)
as the subject, in variants a customer's selfies would show (mirrored, cropped closer, tilted,
lit brighter or warmer), and Matplotlib's Grace Hopper as someone else; sealed into the
internal bucket as ingest keeps them (DESIGN.md §13), with the subject's key served by
`SubjectKeys`, a real HTTP server answering ingest's data-key route."""

import base64
import hashlib
import io
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image, ImageEnhance
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.contracts import SubjectPhoto, SubjectRef
from services.common.sealing import SubjectField, seal_bytes
from services.common.storage import Blob, ObjectStore
from tests.router.stubs import serve


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@cache
def astronaut_photos() -> tuple[bytes, ...]:
    """Eight photos of one person, each a little different."""
    face = Image.fromarray(skimage.data.astronaut())
    warm = np.clip(np.asarray(face, dtype=np.float32) * [1.08, 1.0, 0.9], 0, 255).astype(np.uint8)
    variants = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), face.crop((60, 0, 460, 400)).resize((512, 512)),
                face.rotate(4, resample=Image.Resampling.BILINEAR), ImageEnhance.Brightness(face).enhance(1.15),
                Image.fromarray(warm), face.crop((20, 10, 500, 490)).resize((480, 480)),
                ImageEnhance.Contrast(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).enhance(1.1)]
    return tuple(_png(image) for image in variants)


@cache
def hopper_photo() -> bytes:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as sample:
        return bytes(sample.read())


class SubjectKeys:
    """Subjects' data keys, answered at ingest's internal route; an erased subject's is gone (404).
    Until `reads` reaches `away_until` every request is answered 503, as a proxy in front of a
    restarting ingest answers."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.reads = 0
        self.away_until = 0

    def app(self) -> Starlette:
        async def subject_key(request: Request) -> JSONResponse:
            self.reads += 1
            if self.reads <= self.away_until:
                return JSONResponse({"type": "/problems/unavailable", "status": 503}, status_code=503)
            key = self.keys.get(request.path_params["subject_id"])
            if key is None:
                return JSONResponse({"type": "/problems/data-key-not-found", "status": 404}, status_code=404)
            return JSONResponse({"job_id": request.path_params["subject_id"], "key": base64.b64encode(key).decode()})

        async def no_job_key(request: Request) -> JSONResponse:
            return JSONResponse({"type": "/problems/data-key-not-found", "status": 404}, status_code=404)

        return Starlette(routes=[Route("/internal/v1/subjects/{subject_id}/data-key", subject_key),
                                 Route("/internal/v1/jobs/{job_id}/data-key", no_job_key)])

    def erase(self, subject_id: uuid.UUID) -> None:
        self.keys.pop(str(subject_id), None)


@contextmanager
def serving_keys() -> Iterator[tuple[SubjectKeys, str]]:
    keys = SubjectKeys()
    with serve(keys.app()) as url:
        yield keys, url


async def sealed_subject(objects: ObjectStore, keys: SubjectKeys, photos: tuple[bytes, ...],
                         tenant: str = "t-subjects") -> SubjectRef:
    """A subject of these photos, sealed with a key of its own into the internal bucket."""
    subject_id, key = uuid.uuid4(), os.urandom(32)
    keys.keys[str(subject_id)] = key
    stored = []
    for photo in photos:
        digest = hashlib.sha256(photo).hexdigest()
        object_key = f"subjects/{tenant}/{subject_id}/{digest}"
        sealed = seal_bytes(key, SubjectField(subject_id, f"photo/{digest}"), data=photo)
        await objects.put(objects.internal_bucket, object_key, content=Blob(sealed, "application/octet-stream"))
        with Image.open(io.BytesIO(photo)) as opened:
            stored.append(SubjectPhoto(key=object_key, sha256=digest, media_type=opened.get_format_mimetype() or "",
                                       width=opened.width, height=opened.height))
    photo_set = hashlib.sha256("\n".join(sorted(p.sha256 for p in stored)).encode()).hexdigest()
    return SubjectRef(subject_id=subject_id, kind="person", name="the astronaut", photos=stored,
                      photo_set_sha256=photo_set, trigger_word="glxqzvyk")
