"""The quality vocabulary: dimensions, scoring profiles and quality rules, as data.

Ingest reads it to refuse at submission what the scorer would refuse later; the scorer
measures and judges with the very same declarations. Nothing here measures (no torch).

* `dimensions` — `Dimension`, `Bounds`, the registry `DIMENSIONS`, and what a scorer may lack.
* `builtin` — the built-in dimensions' declarations (their measures live in the scorer).
* `plugins` — dimensions from other packages, through entry points.
* `rules` — `QualityRules`: thresholds, requirements and forbidden conditions of a job or template.
* `profiles` — `Profile` and the functions that read profile files: `job_profile`,
  `template_profile`, `profile_names`, …
* `profile_files/` — the packaged profiles, one YAML file each.
* `fingerprints` — perceptual hashes: near-duplicate pictures are a few bits apart.

Its modules besides those named above:
    calibration.py    the calibration request's contract
"""

from services.common.quality import builtin  # noqa: F401 — registers the built-in dimensions
