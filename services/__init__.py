"""Genline's five services and the package they share; each runs as `python -m services.<name>`.

    common/           the one package every service shares
    delivery/         Delivery: publishes selected images and clips, signs their links, sends
                      webhooks, erases jobs and keeps each tenant's images only as long as its
                      retention says
    ingest/           the ingest service: Genline's public HTTP API and the job read model behind it
    ledger/           the ledger: prepaid credits, reserved on submission and charged on delivery
    router/           the router: admitted jobs become candidates, generated where a passing image
                      is cheapest
    scorer/           the scorer: measures every candidate, judges it against the job's profile, and
                      selects what may ship
"""
