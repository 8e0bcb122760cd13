"""A job of a subject, across styles: what a request adds to name the person or product it is
of (`subject`), how its identity is carried (`identity`) and which of its template's styles
its images are spread over (`styles`), and the checks that resolve them at submission into
the job's `SubjectRef` and `StyleSpec`s. A subject must be the tenant's, of the kind its
template is for, and have enough accepted photos (ready, training, trained or failed: a
failed training leaves it usable by reference)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from services.common.contracts import IdentityMode, StyleSpec, SubjectRef
from services.common.db import Conn
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.common.templates import Template
from services.ingest import subjects

StyleName = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class SubjectFields(BaseModel):
    """What a job request says of its subject and styles (JobRequest takes these fields)."""

    subject: UUID | None = Field(None, strict=False, description="the subject (POST /v1/subjects) the job is of: a"
                                                                 " person or a product of yours, ready; the template"
                                                                 " must be for its kind (subject-headshots,"
                                                                 " subject-product)")
    identity: IdentityMode = Field("auto", description="how the subject's identity is carried into every candidate:"
                                                       " a LoRA trained from its photos (lora; charged once per"
                                                       " subject and photo set, the quote's training line), each"
                                                       " generation conditioned on its photos (reference), or"
                                                       " the cheaper per passing image (auto)")
    styles: list[StyleName] | None = Field(None, min_length=1, max_length=20,
                                           description="the template's styles to spread the images over (all of"
                                                       " them by default); each gets an equal share of `images`")


@dataclass(frozen=True)
class SubjectOrder:
    """The subject and styles a job resolved to."""

    subject: SubjectRef | None = None
    styles: list[StyleSpec] | None = None


def resolved_styles(template_name: str, template: Template, *, asked: list[str] | None) -> list[StyleSpec] | None:
    """The template's styles the job asks for (all of them by default), in the template's order."""
    if not template.styles:
        if asked:
            raise Problem(status=422, slug="unknown-style", detail=f"template {template_name!r} has no styles; leave `styles` out",
                          extra={"field": "styles"})
        return None
    names = [style.name for style in template.styles]
    unknown = [name for name in asked or [] if name not in names]
    if unknown:
        raise Problem(status=422, slug="unknown-style", detail=f"template {template_name!r} has no style {unknown[0]!r}; its styles:"
                      f" {', '.join(names)}", extra={"field": "styles", "styles": names})
    wanted = set(asked or names)
    return [StyleSpec(name=s.name, prompt=s.prompt, params=dict(s.params)) for s in template.styles if s.name in wanted]


@dataclass(frozen=True, kw_only=True)
class Asked:
    """What a request asks of its subject: the tenant, the template (by name), the subject's id."""

    tenant_id: str
    template_name: str
    template: Template
    subject_id: UUID | None


async def resolved_subject(runtime: ServiceRuntime, asked: Asked) -> SubjectRef | None:
    """The job's subject as it travels (its accepted photos, sealed centroid, trigger word)."""
    template, name = asked.template, asked.template_name
    if asked.subject_id is None:
        if template.subject is not None:
            raise Problem(status=422, slug="subject-required", detail=f"template {name!r} makes pictures of your {template.subject}:"
                          " give `subject`, a subject of yours (POST /v1/subjects)", extra={"field": "subject"})
        return None
    if template.subject is None:
        raise Problem(status=422, slug="subject-not-allowed", detail=f"template {name!r} takes no subject; use subject-headshots or"
                      " subject-product", extra={"field": "subject"})
    async with runtime.pool.connection() as conn:
        row = await subjects.read_subject(conn, asked.subject_id, tenant_id=asked.tenant_id)
        if row is None or row["state"] == "erased":
            raise Problem(status=422, slug="unknown-subject", detail=f"subject: you have no subject {asked.subject_id}",
                          extra={"field": "subject"})
        photos = await subjects.subject_photos(conn, asked.subject_id)
    if row["kind"] != template.subject:
        raise Problem(status=422, slug="subject-kind-mismatch", detail=f"template {name!r} is for a {template.subject}; subject"
                      f" {asked.subject_id} is a {row['kind']}", extra={"field": "subject"})
    if row["state"] not in subjects.ORDERABLE:
        raise Problem(status=422, slug="subject-not-ready", detail=f"subject {asked.subject_id} has {row['photos_accepted']} accepted"
                      " photos; it needs 4 before it can be ordered", extra={"field": "subject",
                                                                           "state": row["state"]})
    return subjects.subject_ref(row, photos)


async def note_ordered(conn: Conn, subject: SubjectRef | None, *, at: datetime) -> None:
    """The subject's retention counts from this order (in the submission's transaction)."""
    if subject is not None:
        await subjects.ordered(conn, subject.subject_id, at=at)
