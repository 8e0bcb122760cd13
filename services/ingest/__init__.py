"""The ingest service: Genline's public HTTP API and the job read model behind it.

Module map, one room per responsibility:

__main__.py        `python -m services.ingest`: serve, create a tenant, move it to a plan
app.py             the FastAPI app: routers, gRPC and HTTP clients, sweeper, lifespan hooks
settings.py        IngestSettings, the service's configuration
deps.py            FastAPI dependencies: runtime, settings, store, plans, the scoped caller
routes/            one module per API area; each declares routes and calls the modules below
examples.py        example bodies of the jobs API for the OpenAPI document (JOB_ID and friends)
submission.py      a job's submission: JobRequest, its checks, the idempotent write with JobSubmitted
request_rules.py   pure rules of a request: candidates planned, Cancel-After, request fingerprint
job_lookup.py      a job id as a route names it: parsed, and 404/410 for a job the tenant cannot see
webhook_targets.py whether a webhook URL may be used (public addresses only)
ledger_calls.py    the ledger's gRPC messages, its stub as a dependency, its errors as problems
scorer_calls.py    what ingest asks of the scorer's internal API: measurements, calibration
domain.py          the job read model (JobView) and its state machine, without I/O
view_parts.py      the view's own models: failure, billing, regenerations, stage costs, receipt, reports
sweep_rules.py     the sweeper's rules: how long a job may stay in a state, when it is overdue, what a look decides
sweeper.py         the sweeper's rounds: one replica at a time ends the overdue jobs
job_log.py         the per-job event log a client reads, without I/O
handlers.py        bus handlers: every service's job events projected into the read model and its log
store.py           the ingest tables: read model, event log, listing pages, idempotency keys, uploads, reports
live.py            live log entries for the SSE streams, whichever replica wrote them
keys.py            API keys: scopes, making and hashing a key, the api_keys table
tenants.py         the tenants table, and creating a tenant or moving its plan from outside the service
plans.py           plans as data (plans.yaml) and the request-rate arithmetic
limits.py          a plan's limits enforced on the database (rate, jobs in progress, images per day)
data_keys.py       each job's data key, which seals its prompt; erasure destroys it
screening.py       screening of uploaded and reference photos before anything is stored
guidance.py        an input photo judged against its template's checks before a job is accepted
receipts.py        signed job receipts, without I/O: what one says and how it is signed
receipt_store.py   issuing and reading receipts, and the keys they were signed with
receipt_replay.py  `genline replay receipts`: every receipt checked against the record
replay.py          `genline replay jobs`: every read model rebuilt from the events and compared
"""
