"""Subjects: a person or a product a tenant's jobs may be of, known by the tenant's photos of it,
kept sealed under the subject's own data key and erased with everything made from it. One
feature package: its routes, its rules and its SQL.

Its face, what other features may use: a subject and its photos read for a job or an
evaluation (`read_subject`, `subject_photos`, `ORDERABLE`, `subject_ref`, `ordered`), the
tenant's retention set by an operator (`set_subject_retention`), and the router's identity
events applied to it (`moved_by_identity`, for the bus handlers).

    routes.py         `/v1/subjects`: the people and products a tenant's jobs may be of, made known by photos
    store.py          the subjects tables: subjects, their photos, verdicts and identities, retention
    changes.py        a subject's changes, written and announced
    domain.py         a subject as clients see it, and how its state moves, without I/O
    examples.py       examples of the subjects API's bodies, as the OpenAPI document shows them
    judging.py        judging a subject's photos, without I/O
    lifecycle.py      a subject's life outside its photos
    photos.py         photos added: screened, measured by the scorer, judged under the row lock, kept sealed
    views.py          a subject as the API shows it, built from its rows, and what is kept sealed of
                      it
"""

from services.ingest.subjects.changes import moved_by_identity
from services.ingest.subjects.domain import ORDERABLE
from services.ingest.subjects.store import ordered, read_subject, set_subject_retention, subject_photos
from services.ingest.subjects.views import subject_ref

__all__ = ["ORDERABLE", "moved_by_identity", "ordered", "read_subject", "set_subject_retention", "subject_photos",
           "subject_ref"]
