"""The ingest service: Genline's public HTTP API and the job read model behind it.

Module map: the service's frame at the top, its features in folders. A feature package holds its
routes, its rules and its SQL, and other features reach it only through its face (__init__.py).

__main__.py        `python -m services.ingest`: the service (its commands run through `genline`)
app.py             the FastAPI app: routers, gRPC and HTTP clients, sweeper, lifespan hooks
cli.py             ingest's commands in the `genline` tree

The kernel every feature imports, which imports no feature package:
settings.py        IngestSettings, the service's configuration
team_settings.py   TeamSettings (SMTP, the link key, session timeouts, identity providers), part of IngestSettings
deps.py            FastAPI dependencies: runtime, settings, objects, plans, the scoped caller (an API key, or a
                   member's console session with its CSRF token) and the request counted against its plan's rate
session_auth.py    a key's hash; a console session's cookies, its token's digest and its CSRF check, as deps.py reads them
roles.py           the scopes and the role table (owner, admin, developer, billing, viewer) everything reads
plans.py           plans as data (plans.yaml) and the request-rate arithmetic
prompt_rules.py    the operator's and the tenant's prompt rules, judged without I/O (the settings hold the operator's)
signing_key.py     the receipts' signing key read from its text, or made, as the settings check it
store/             the kernel's SQL: callers' keys, sessions and rates (callers.py), data keys (data_keys.py);
                   a feature package keeps its own
ledger_calls.py    the ledger's gRPC messages, its stub as a dependency, its errors as problems
data_keys.py       each job's (and subject's) data key, which seals its prompt; erasure destroys it
key_encryption.py  the key-encryption keys the data keys are stored wrapped under (a key file, or KMS)

routes/            the frame's routes, of no feature: the API's root, the documentation site, the internal
                   data-key API, the tenant's audit log

jobs/              a job from submission to its end, one feature package: its routes (routes/: jobs,
                   candidates, templates), the read model every service's events move (view.py, domain.py,
                   handlers.py, projection.py, finishing.py) and its SQL (store/), the submission, the live
                   log, the sweeper and the replay; its face exports the read model and a job's lookups
accounts/          keys and accounts, one feature package: tenants and their plans, API keys, a plan's limits at
                   submission, spend caps and prompt screening
  routes/            `/v1/api-keys` (keys.py), `/v1/account/prompt-screening` (prompt_screening.py)
  store.py           the accounts' tables: tenants, api_keys, the plans' counters, prompt_screening
  tenants.py         creating a tenant or moving its plan from outside the service
  keys.py            API keys: making a key, issuing and rotating it, its grant and spend caps
  spend_caps.py      a key's spend as the ledger counts it, and the 402 a job past its cap gets
  prompt_screening.py prompts screened before any hold: rules, the tenant's table, moderation's outage
  moderation.py      the hosted moderation adapter (OpenAI-style) behind its breaker
  limits.py          a plan's limits at submission, on the database (jobs in progress, images per day)
subjects/          the people and products jobs are of, known by the tenant's photos; one feature package
  routes.py          `/v1/subjects`
  store.py           the subjects tables
  domain.py          a subject as clients see it, its states and how identity events move it, without I/O
  judging.py         each photo's verdict: checks, repeats, one person across the photos, room; without I/O
  photos.py          photos added: screened, measured by the scorer, judged under the row lock, kept sealed
  views.py           a subject's view from its rows; its sealed embeddings and centroid; the SubjectRef of a job
  changes.py         a change written and announced (SubjectChanged); erasure; the router's identity events
  lifecycle.py       create, read and erase; the retention sweeper
  examples.py        example bodies of the subjects API for the OpenAPI document
members/           a tenant's people, one feature package: members, service accounts, invitations, sign-in
                   by mail and SSO, and sessions; its routes (routes/), its rules and its SQL (store/). Other
                   features reach it through its face (members/__init__.py) only
webhooks/          webhooks and events, one feature package: endpoints, attempts and secrets; a job's event
                   log as a page or live (routes/); where a webhook may be sent (targets.py)
receipts/          signed job receipts and provenance; one feature package
  routes/            signed job receipts and their keys (receipts.py); provenance for anyone (provenance.py)
  store.py           the receipts' tables
  provenance.py      what a file proves (POST /v1/verify): its Content Credentials, its watermark, its delivery
  document.py        what a receipt says and how it is signed, without I/O
  issuing.py         issuing and reading receipts, and the keys they were signed with
  replay.py          `genline replay receipts`: every receipt checked against the record
inputs/            uploads and inputs, one feature package: what a client sends besides its request, checked
                   before anything is stored
  routes.py          `/v1/uploads`
  store.py           the uploads table
  screening.py       screening of uploaded and reference photos
  guidance.py        an input photo judged against its template's checks before a job is accepted
  scorer_calls.py    what ingest asks of the scorer's internal API: measurements, calibration
compat/            OpenAI's Images API in Genline's terms, one feature package (routes.py, store.py): errors, model aliases, a
                   request as a job, a final job as OpenAI's answer, the call's wait
batches/           OpenAI's Files and Batch APIs, one feature package (routes/, store.py): the JSONL checked and
                   stored in chunks as it streams in, the runner that submits lines a window at a time, the
                   output and error files
evaluations/       images the line did not make, judged by the scorer and charged per image, one feature package (routes.py, store.py):
                   their sources, the scorer's and the ledger's calls, the background runner and its webhook
admin/             the ingest admin API on the admin port, one feature package (routes/): tenants, what an
                   operator watches, retention, calibration and margins
console/           the web console, one feature package: its page, its ES modules and the route
                   that serves them (routes.py)
billing/           what work costs and what a tenant holds, buys and spends, one feature package (routes/):
                   prices and the balance, buying credits, balance alerts, usage against the plan and spend
migrations/        the ingest schema, numbered once
"""
