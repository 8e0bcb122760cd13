"""The scorer: measures every candidate, judges it against the job's profile, and selects
what may ship. What profiles, rules and dimensions are is shared vocabulary in
`services.common.quality`; faces are found by `services.common.face_models`.

* `app.py` — the service: the event worker plus the internal API's two routes.
* `__main__.py` — `python -m services.scorer`.
* `settings.py` — `ScorerSettings`: device, CLIP model, threads, per-tenant nsfw ceilings.
* `handlers.py` — thin adapters: an attempt's candidates in, scores and an outcome out.
* `domain.py` — pure rules: from verdicts to published scores, from scores to what follows.
* `selection.py` — pure: which passing candidates ship, each style's share, no two alike.
* `subjects.py` — a job's subject opened with its key (sealed photos, centroid), kept a while.
* `store.py` — every SQL statement of the scorer (`scored_jobs`, `scores`).
* `calibration.py` — pure: thresholds against images people judged, with suggestions.
* `routes/` — the internal HTTP API: `calibration.py` for ingest's calibration report (here),
  `measurements.py`, one input photo measured for ingest's template checks, and `evaluations.py`,
  images the line did not make judged as a job's candidates are (ingest's /v1/evaluations).
* `subject_photos.py` — what a subject's photo shows (faces and embedding, or a product's
  foreground; size, fingerprint) for ingest's screening of a subject's photos.
* `cli.py` — `genline score`: judge image files from the command line.
* `dimensions/` — the measures (tier 1, faces, portrait, against a subject, moderation,
  CLIP, motion, video clips read with PyAV), the tier-by-tier walk and the `Scorer` engine.
* `migrations/` — the scorer's tables.

Its modules besides those named above:
    offline.py        scoring image files without the platform
"""
