"""The embedded stack: the servers, the services and the fleet that `genline run` starts on one
machine.

    broker.py         the embedded stack's Kafka protocol
    cli.py            `genline run`: the whole platform on the embedded stack, with a demo job
    credentials.py    each service's own credentials on the embedded stack, as a Kubernetes Secret
                      per service holds them in production
    demo.py           the demo job: submitted through the public API and followed to its links
    demo_subject.py   the demo's headshot order: a subject from eight photos, trained, ordered across styles
    embedded.py       the embedded stack
    endpoints.py      where the embedded stack's servers listen, and what follows from it
    fleet.py          the five services as separate processes: start, wait until ready, kill,
                      restart, replace, stop; the release each runs
    front.py          a stable address in front of each service's processes, as a Kubernetes
                      Service
    launcher.py       `genline run` (`python -m genline_stack`): the whole platform on the embedded
                      stack, plus a demo job
    portraits.py      photos of one person made from one portrait, offline
    ports.py          ports and processes of the embedded stack and the fleet
    postgres.py       the embedded stack's PostgreSQL
    seaweedfs.py      the embedded stack's object store
    stopping.py       stopping what a program started, whatever stops it: SIGTERM and SIGINT run
                      its `finally` blocks
    tls_proxy.py      TLS in front of the embedded broker, so that the services' Kafka clients speak
                      TLS to it as to a real cluster
"""
