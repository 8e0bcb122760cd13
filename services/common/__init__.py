"""The one package every service shares. Which file holds what:

Events and the bus
    contracts.py     every event and shared shape, versioned, with their upcasters
    event_shapes.py  the events' shapes as JSON Schema: frozen with each release, written for
                     an older release's readers, compared between releases
    releases.py      this release, the ones before it, and what each one's code reads
                     (release_records/)
    bus/             outbox, relay, inbox, consumer, journal, envelopes, replay: how
                     events travel between services (its own docstring lists its files)
    audit.py         an action's audit record, in the transaction of the change
Data and content
    db.py            PostgreSQL: schemas, migrations, pools, batch inserts
    listening.py     NOTIFY heard: one listening connection a process, for every channel
    storage.py       object storage and signed links; sigv4.py signs its requests
    sealing.py       tenants' content sealed under per-job data keys
    data_keys.py     the client of ingest's data-key API
    templates.py     the template catalogue (templates.yaml)
    provenance.py    Content Credentials (C2PA): certificates, the job assertion, reading a manifest
    watermark.py     the invisible watermark: a 48-bit id embedded in an image or clip and detected
                     again after resizes, crops and recompression; watermark_code.py its payload
                     and carriers, watermark_sync.py how its tiles are found again,
                     watermark_dwt.py the earlier method, still read
    quality/         the quality vocabulary: dimensions, profiles, rules, calibration
    face_models.py   the one face detector, for the scorer and the router's crop stage
    face_resnet.py   dlib's face-recognition ResNet read from its model file and run by torch
Serving and running
    runtime.py       what every service process has, and its orderly start and stop
    settings.py      the settings every service shares
    api.py           what every HTTP API keeps to; problems.py its RFC 9457 errors
    admin.py         operator tokens and scopes for the admin APIs
    grpc_server.py   a service's internal gRPC server; protos.py builds its stubs
    rounds.py        the advisory-lock round of every periodic sweeper
    http_headers.py  headers the services' clients act on (Retry-After)
    targets.py       where outbound fetches may go: one guard, an allow-list per purpose (no SSRF)
    telemetry.py     logs, metrics, health; tracing.py the traces

Its modules besides those named above:
    cli.py             the `genline` command tree, to which each part of the platform adds its
                       commands
    identity.py        service identity: every internal call says which service makes it, and proves
                       it
    internal_calls.py  internal calls, both ends
    supervision.py     background tasks that never die silently: relays, watchers, sweepers,
                       schedulers
    turns.py           whose turn is next, wherever work waits
    video.py           clips as files: read what an MP4 (or WebM) says about itself, decode its
                       frames, write one
    worker_processes.py  what worker processes share: they give way to the services and outlive
                       none
"""
