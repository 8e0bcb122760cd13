"""OpenAI's APIs in Genline's terms: what the `openai` package and LiteLLM send, as the jobs
it asks for, and what a job did, as OpenAI answers. One feature package, the OpenAI-compatible
routes with their rules and their SQL.

Its face, what other features may use (batches/ runs each line of a batch as an images call):
a line's request checked as a job (`ImageGenerationRequest`, `job_request`, `answered_quality`,
`checked_job`, `AnswerShape`, `ModelBook`), its answer or refusal in OpenAI's shape
(`ImagesResponse`, `images_response`, `refusal`, `render_error`), and a job's images
(`Pictures`).

routes.py     `/v1/images/generations` and `/v1/images/edits`, and `/v1/idempotency-keys/{key}`
store.py      the job an Idempotency-Key is bound to, for a caller whose call timed out

errors.py     errors in OpenAI's shape, with the statuses the `openai` package reads as its exceptions
models.py     what `model` names: a template, or an alias the operator maps (models.yaml)
images.py     an images request as a job's request, a final job as OpenAI's images answer, without I/O
outcomes.py   how a job's end answers a call: its images, or the error OpenAI would give
forms.py      the multipart form of an edit, bounded before it is read
waiting.py    a call waiting for its job, and the job's images as links or base64
calls.py      one images call: submitted as a job, waited for, answered
"""

from services.ingest.compat.calls import AnswerShape, checked_job
from services.ingest.compat.errors import render as render_error
from services.ingest.compat.images import (
           ImageGenerationRequest,
           ImagesResponse,
           answered_quality,
           images_response,
           job_request,
)
from services.ingest.compat.models import ModelBook
from services.ingest.compat.outcomes import refusal
from services.ingest.compat.waiting import Pictures

__all__ = ["AnswerShape", "ImageGenerationRequest", "ImagesResponse", "ModelBook", "Pictures", "answered_quality",
           "checked_job", "images_response", "job_request", "refusal", "render_error"]
