"""Jobs: a job's submission, its read model and state machine, the log a client reads, the
streams that follow it, the sweeper that ends what waits too long, and the replay that
rebuilds every read model from the events.

Its modules besides those named above:
    clip_makers.py     whether a clip a job asks for can be made at all
    domain.py          how events move a job's view (services/ingest/domain.py): its state machine,
                       without I/O
    examples.py        examples of the jobs API's bodies, as the OpenAPI document shows them
    job_log.py         the per-job event log, without I/O: what a client is told about a job, entry
                       by entry
    job_lookup.py      a job as a route names it: its id parsed, and the answer for a job the tenant
                       cannot see
    live.py            live entries of the job log for the streams this process serves, whichever
                       replica wrote them
    projection.py      how changes to jobs' views are committed, whoever made them (other services'
                       events, the sweeper, a request)
    request_rules.py   pure rules a submission applies to its request
    scoring_checks.py  what the scorer will apply to a job, checked at submission
    subject_order.py   a job of a subject, across styles
    sweep_rules.py     the sweeper's rules, without I/O
    video_request.py   a job's `video` object
"""
