"""The calibration request's contract: images people have judged, as ingest sends them to
the scorer's internal API (`POST /internal/v1/calibration`, the scorer's `routes`).

A `Judged` image is what the scorer said about it (each dimension's value and verdict, and
the threshold in force) and whether people called it bad. Its JSON form:

    {"profile": "generic", "bad": false,
     "dimensions": {"sharpness": [812.5, true], "faces": [null, false]},
     "threshold": {"sharpness": 20.0, "faces": 1.0}}
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Judged:
    profile: str
    bad: bool
    # dimension → (value or None when not measured, passed)
    dimensions: Mapping[str, tuple[float | None, bool]]
    threshold: Mapping[str, float]

    def as_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "bad": self.bad, "threshold": dict(self.threshold),
                "dimensions": {name: [value, passed] for name, (value, passed) in self.dimensions.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Judged":
        """ValueError (or KeyError, TypeError) when `data` is not a judged image."""
        dimensions = {str(name): (None if value is None else float(value), bool(passed))
                      for name, (value, passed) in data["dimensions"].items()}
        threshold = {str(name): float(value) for name, value in data["threshold"].items()}
        return cls(profile=str(data["profile"]), bad=bool(data["bad"]), dimensions=dimensions, threshold=threshold)
