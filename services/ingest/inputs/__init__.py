"""Uploads and inputs, one feature package: what a client sends besides its request, checked
before anything is stored. Uploaded and reference photos screened (and uploads kept, under
`/v1/uploads`), an input photo judged against its template's checks, and the measurements of
it asked of the scorer.

Its face, what other features may use: screening a photo (`Screening`, the app's gate as a
route's dependency, `ScreeningGate` its type; `Sent`, `ScreeningLimits`, `ScreenedImage`,
`reference_photo_bytes`, `MAX_REFERENCE_BASE64`), a tenant's upload (`read_upload`), a photo
judged against its template (`check_input`, `failed_checks`) and the scorer's answers
(`measure_subject` with `SubjectQuestion`, `ask_scorer` with `ScorerQuestion`, `calibrate`).

Its modules:
    routes.py         `/v1/uploads`: input photos for later jobs, screened before anything is stored
    store.py          the uploads table
    screening.py      screening of uploaded photos: what a client sends is stored only as a clean
                      image
    guidance.py       guidance: an input photo judged against its template's checks, before a job is
                      accepted
    scorer_calls.py   what ingest asks of the scorer's internal API
"""

from services.ingest.inputs.guidance import check_input, failed_checks
from services.ingest.inputs.scorer_calls import ScorerQuestion, SubjectQuestion, ask_scorer, calibrate, measure_subject
from services.ingest.inputs.screening import (
    MAX_REFERENCE_BASE64,
    ScreenedImage,
    Screening,
    ScreeningGate,
    ScreeningLimits,
    Sent,
    reference_photo_bytes,
)
from services.ingest.inputs.store import read_upload

__all__ = ["MAX_REFERENCE_BASE64", "ScreenedImage", "Screening", "ScreeningGate", "ScreeningLimits", "ScorerQuestion", "Sent",
           "SubjectQuestion", "ask_scorer", "calibrate", "check_input", "failed_checks", "measure_subject",
           "read_upload", "reference_photo_bytes"]
