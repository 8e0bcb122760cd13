"""Guidance: an input photo judged against its template's checks, before a job is accepted.

The scorer measures the photo (its internal API, `POST /internal/v1/measurements`) with
the same dimensions it scores candidates with; here each value is judged against the
template's bounds and every failure is said in a sentence a person can act on. The
judging is pure (`failed_checks`); only `measure` does I/O.
"""

import math
from dataclasses import dataclass

from services.common.problems import Problem
from services.common.templates import InputCheck, load_catalogue
from services.ingest.inputs.scorer_calls import measure
from services.ingest.settings import IngestSettings


@dataclass(frozen=True, kw_only=True)
class FailedCheck:
    dimension: str
    value: float | None
    min: float | None
    max: float | None
    message: str

    def as_json(self) -> dict[str, object]:
        return {"dimension": self.dimension, "value": self.value, "min": self.min, "max": self.max,
                "message": self.message}


def failed_checks(checks: dict[str, InputCheck], values: dict[str, float | None]) -> list[FailedCheck]:
    """Every check the measured `values` fail, in the catalogue's order; a check whose
    `needs` failed is skipped, and a value that could not be measured fails its check."""
    failed: list[FailedCheck] = []
    for dimension, check in checks.items():
        if check.needs is not None and any(f.dimension == check.needs for f in failed):
            continue
        value = values.get(dimension)
        if value is None or math.isnan(value):
            failed.append(FailedCheck(dimension=dimension, value=None, min=check.min, max=check.max,
                                      message=f"the photo's {dimension.replace('_', ' ')} could not be measured"))
        elif check.min is not None and value < check.min:
            assert check.below is not None, "an input check's min comes with its sentence"
            failed.append(FailedCheck(dimension=dimension, value=value, min=check.min, max=check.max, message=said(check.below, value, check=check)))
        elif check.max is not None and value > check.max:
            assert check.above is not None, "an input check's max comes with its sentence"
            failed.append(FailedCheck(dimension=dimension, value=value, min=check.min, max=check.max, message=said(check.above, value, check=check)))
    return failed


def said(sentence: str, value: float, *, check: InputCheck) -> str:
    return sentence.format(value=value, min=check.min if check.min is not None else math.nan,
                           max=check.max if check.max is not None else math.nan)


def guidance_problem(template: str, failed: list[FailedCheck]) -> Problem:
    sentences = "; and ".join(f.message for f in failed)
    return Problem(status=422, slug="input-guidance",
                   detail=f"the input photo does not suit the {template} template: {sentences}.",
                   extra={"template": template, "checks": [f.as_json() for f in failed]})


async def check_input(settings: IngestSettings, template: str, *, photo: bytes) -> None:
    """Refuse (422, with guidance) a photo that fails its template's input checks."""
    checks = load_catalogue().input_checks(template)
    if not checks:
        return
    values = await measure(settings, photo, dimensions=list(checks))
    failed = failed_checks(checks, values)
    if failed:
        raise guidance_problem(template, failed)
