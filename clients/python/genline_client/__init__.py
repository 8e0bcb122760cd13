"""Genline's Python client: `Genline` (sync) and `AsyncGenline` (asyncio), typed errors,
`Video` to ask for clips (MP4) rather than images, `client.subjects` for the people and
products jobs are of, `verify_webhook` for the webhooks Genline
sends, and `verify_receipt` / `verify_chain` for its signed job receipts (offline, with the
published keys); `verify_file` asks a deployment what a file proves (its Content Credentials
and watermark)."""

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
)
from genline_client.provenance import verify_file
from genline_client.receipts import ReceiptVerificationError, verify_chain, verify_receipt
from genline_client.retry import NO_RETRIES, RetryPolicy
from genline_client.sync import Genline
from genline_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "APIConnectionError", "APIError", "AsyncGenline", "BadRequest", "Checkout", "ChecksumMismatch", "ConfigurationError",
    "Conflict", "FINAL_STATES", "FirstFrame", "Genline", "GenlineError", "Job", "JobEvent", "JobPage", "JobSummary",
    "NO_RETRIES", "NotFound", "Output", "PayloadTooLarge", "PhotoVerdict", "PhotosAdded", "Subject", "SubjectPage", "PaymentRequired", "PermissionDenied", "Preview", "Progress",
    "RateLimited",
    "ReceiptVerificationError", "RetryPolicy", "ServerError", "ServiceUnavailable", "SubmittedJob", "Unauthorized",
    "Upload", "Usage", "UsageDay", "ValidationError", "Video", "WaitTimeout", "WebhookVerificationError", "verify_chain",
    "verify_file", "verify_receipt",
    "verify_webhook",
]
