"""Jobs, one feature package: a job from its submission to its end. Its routes (submit, follow,
cancel, report, erase; a candidate's image; the template catalogue), the read model every
service's events move (its view, the state machine, the log a client reads) and its SQL, the
streams that follow a job, the sweeper that ends what waits too long, and the replay that
rebuilds every read model from the events.

Its face, what other features may use: the read model (JobView, a Change, a Period of time, a
view with its receipt), a job looked up and named as a route names it, its live log as a route's
dependency (Watch), a job's request and its admission (batches, the OpenAI-compatible API), a
job's cancellation recorded (batches), and the reads of the jobs' table other features answer
from. The app mounts the routes and wires the handlers and the sweeper; the CLI runs the replay.

    routes/            `/v1/jobs` (jobs.py), a candidate's image (candidates.py), `/v1/templates`
                       (templates.py)
    store/             the jobs' SQL: the read model and a submission's write (__init__), the log
                       (log.py), reads over many jobs (listing.py)
    view.py            the job read model (JobView and its parts: billing, failure, stage costs…;
                       a log entry), without I/O
    domain.py          how events move a job's view: its state machine, without I/O
    handlers.py        bus handlers: every service's job events projected into the read model and
                       its log
    projection.py      how changes to jobs' views are recorded, whoever made them
    finishing.py       changes that may end jobs committed: receipts issued, JobFinished announced
    submission.py      JobRequest, its checks, the idempotent write with JobSubmitted
    clip_makers.py     whether a clip a job asks for can be made at all
    examples.py        examples of the jobs API's bodies, as the OpenAPI document shows them
    job_log.py         the per-job event log, without I/O: what a client is told about a job, entry
                       by entry
    job_lookup.py      a job as a route names it: its id parsed, and the answer for a job the tenant
                       cannot see
    live.py            live entries of the job log for the streams this process serves, whichever
                       replica wrote them
    request_rules.py   pure rules a submission applies to its request
    scoring_checks.py  what the scorer will apply to a job, checked at submission
    subject_order.py   a job of a subject, across styles
    sweep_rules.py     the sweeper's rules, without I/O
    sweeper.py         the sweeper's rounds: one replica at a time ends the overdue jobs
    replay.py          `genline replay jobs`: every read model rebuilt from the events and compared
    video_request.py   a job's `video` object
"""

from services.ingest.jobs.clip_makers import Router
from services.ingest.jobs.domain import State, request_cancel
from services.ingest.jobs.examples import CLIP_FROM_IMAGE_EXAMPLE, JOB_ID
from services.ingest.jobs.job_lookup import parse_job_id, refuse_missing
from services.ingest.jobs.live import LogWatch, Watch
from services.ingest.jobs.projection import record
from services.ingest.jobs.store import (
    job_state,
    job_with_output,
    read_log,
    read_view,
    settled_views,
    tenant_exists,
    tenant_log_position,
    views_with_outputs,
    was_erased,
)
from services.ingest.jobs.submission import MAX_IMAGES, JobAdmission, JobRequest
from services.ingest.jobs.video_request import VideoRequest
from services.ingest.jobs.view import Change, JobView, Period, with_receipt

__all__ = ["CLIP_FROM_IMAGE_EXAMPLE", "JOB_ID", "MAX_IMAGES", "Change", "JobAdmission", "JobRequest", "JobView",
           "LogWatch", "Period", "Router", "State", "VideoRequest", "Watch", "job_state", "job_with_output",
           "parse_job_id", "read_log", "read_view", "record", "refuse_missing", "request_cancel", "settled_views",
           "tenant_exists", "tenant_log_position", "views_with_outputs", "was_erased", "with_receipt"]
