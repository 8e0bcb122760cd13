"""Delivery: publishes selected images and clips, signs their links, sends webhooks, erases jobs and
keeps each tenant's images only as long as its retention says.

* `app.py` — the service: the event worker, the webhook sender, the retention sweeper and
  the internal webhook API.
* `__main__.py` — `python -m services.delivery`.
* `settings.py` — `DeliverySettings`: link lifetimes, webhook retries and networks, retention rounds.
* `handlers.py` — thin adapters: a scored job's images published, or a cancel answered.
* `domain.py` — pure rules: where images live, one outcome per job, what a webhook is.
* `postprocess.py` — pure: a delivered image's format, quality, both watermarks and thumbnail.
* `clips.py` — a delivered video clip: an MP4 with its index first, re-encoded with the
  invisible watermark in every frame (and whatever the template's visible watermark, frame
  rate, size, bitrate or codec asks); its poster.
* `provenance.py` — the last step: the signed C2PA Content Credentials on every delivered
  image and clip, the watermark declared as their soft binding; the signing key, wrapped or
  from a Secret.
* `rendering.py` — the CPU work of a file (post-processing and signing) in a bounded pool of
  worker processes, in fair turns across tenants.
* `webhooks.py` — webhooks queued in delivery's own outbox and sent with retries: a job's, and
  a tenant's alerts (AccountAlerted from the ledger).
* `routes.py` — internal HTTP API over the webhook tables, for ingest's public routes.
* `retention.py` — the retention sweeper: deletes images older than a tenant's retention,
  one replica a round (`services.common.rounds`).
* `migrations/` — delivery's tables.

Its modules besides those named above:
    store.py          delivery's tables
"""
