"""Genline's Python client: `Genline` (sync) and `AsyncGenline` (asyncio), typed errors,
`Video` to ask for clips (MP4) rather than images, `client.subjects` for the people and
products jobs are of, `verify_webhook` for the webhooks Genline
sends, and `verify_receipt` / `verify_chain` for its signed job receipts (offline, with the
published keys); `verify_file` asks a deployment what a file proves (its Content Credentials
and watermark).

Its modules besides those named above:
    _calls.py         what each API call sends and how its answer is read, shared by the sync and
                      async clients
    _download.py      writing a delivered image or clip to disk, checked against the sha256 the job
                      names
    _resources.py     what the batch and evaluation calls send and how their answers are read (as
                      `_calls` is for jobs)
    aio.py            `AsyncGenline`, the asyncio client: the same calls as `Genline`, awaited
    aio_batches.py    `client.batches` and `client.evaluations` of the asyncio client
                      (`AsyncGenline`)
    batches.py        `client.batches` and `client.evaluations` of the synchronous client
                      (`Genline`)
    models.py         the API's answers as pydantic models
    provenance.py     `verify_file`: what a file proves, asked of a Genline deployment's `POST
                      /v1/verify`, which anyone may call: its Content Credentials checked against
                      the deployment's trust anchor, its invisible watermark when the credentials
                      are gone, AI-generated there or not, intact or altered
    retry.py          when to try a request again, and how long to wait first
    sse.py            server-sent events (the WHATWG `text/event-stream` format), read line by line
    subjects.py       `client.subjects`: the people and products your jobs are of, made known by
                      your photos
"""

from genline_client.aio import AsyncGenline
from genline_client.errors import (
    APIConnectionError,
    APIError,
    BadRequest,
    ChecksumMismatch,
    ConfigurationError,
    Conflict,
    GenlineError,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
    WaitTimeout,
)
from genline_client.models import (
    FINAL_STATES,
    Account,
    Checkout,
    FirstFrame,
    Job,
    JobEvent,
    JobPage,
    JobSummary,
    Output,
    PhotosAdded,
    PhotoVerdict,
    Preview,
    Progress,
    Subject,
    SubjectPage,
    SubmittedJob,
    Upload,
    Usage,
    UsageDay,
    Video,
    WaivedCheck,
)
from genline_client.provenance import verify_file
from genline_client.receipts import ReceiptVerificationError, verify_chain, verify_receipt
from genline_client.retry import NO_RETRIES, RetryPolicy
from genline_client.sync import Genline
from genline_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "APIConnectionError", "Account", "APIError", "AsyncGenline", "BadRequest", "Checkout", "ChecksumMismatch", "ConfigurationError",
    "Conflict", "FINAL_STATES", "FirstFrame", "Genline", "GenlineError", "Job", "JobEvent", "JobPage", "JobSummary",
    "NO_RETRIES", "NotFound", "Output", "PayloadTooLarge", "PhotoVerdict", "PhotosAdded", "Subject", "SubjectPage", "PaymentRequired", "PermissionDenied", "Preview", "Progress",
    "RateLimited",
    "ReceiptVerificationError", "RetryPolicy", "ServerError", "ServiceUnavailable", "SubmittedJob", "Unauthorized",
    "Upload", "Usage", "UsageDay", "ValidationError", "Video", "WaitTimeout", "WaivedCheck", "WebhookVerificationError", "verify_chain",
    "verify_file", "verify_receipt",
    "verify_webhook",
]
