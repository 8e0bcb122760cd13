"""Scoring image files without the platform (`genline score`, declared in `cli.py`): judge
them against a scoring profile.

    python -m services.scorer.cli score [--profile NAME] [--reference PATH] [--prompt TEXT]
        [--subject DIR [--subject-kind person|product]] [--clip-model DIR] [--size WxH]
        [--rules FILE] [--device cpu|cuda] [--json] PATH...

With --subject, the images are judged against a subject made of the photos in DIR (a person's
centroid and skin, or a product's features), as an order of that subject is, whatever the
profile (`subject-headshot` and `subject-product` are made for it).

    python -m services.scorer.cli score --calibrate DIR [--profile NAME] [...] [--json]

With --calibrate, DIR holds images people judged, in the subfolders `good/` and `bad/`;
each is scored and, per dimension, the pass rate, the bad images let through and a
threshold suggestion are printed (see `services.scorer.calibration`); exit status 0.

With --json it prints one JSON array, an object per image:
{"path", "passed", "score", "fingerprint", "dimensions": {NAME: {"value", "threshold", "passed", "reason"}}}
(an unavailable dimension has value null and passed false). Otherwise a table.
Exit status: 0 when every image passed, 1 when any failed, 2 on a usage error (unknown
profile, unreadable or undecodable file, invalid rules, missing CLIP model for a
profile that requires it), with the reason on stderr.
"""

import argparse
import dataclasses
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from services.common.contracts import SubjectKind
from services.common.quality.calibration import Judged
from services.common.quality.dimensions import readable
from services.common.quality.profiles import Profile, ProfileError, load_profile, with_subject_checks
from services.scorer import calibration
from services.scorer.dimensions import (
    ClipModelError,
    Equipment,
    ImageVerdict,
    QualityRules,
    Scorer,
    Scoring,
    UndecodableImage,
)
from services.scorer.dimensions.likeness import likeness_of
from services.scorer.dimensions.subject import Likeness, OpenedSubject

ALL_PASSED, SOME_FAILED, USAGE_ERROR = 0, 1, 2
SIZE = re.compile(r"(\d+)[xX×](\d+)")


class UsageError(Exception):
    """Something the user can fix; reported in one line, exit status 2."""


def score(args: argparse.Namespace, stdout: TextIO | None = None, *, stderr: TextIO | None = None) -> int:
    """What `genline score` does with its arguments; the exit status."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        if args.calibrate:
            return print_calibration(args, stdout)
        verdicts = score_files(args)
    except UsageError as error:
        print(f"genline score: {error}", file=stderr)
        return USAGE_ERROR
    if args.json:
        json.dump([_as_json(path, v) for path, v in zip(args.paths, verdicts)], stdout, indent=2, allow_nan=False)
        stdout.write("\n")
    else:
        stdout.write(render_table(args.paths, verdicts))
    return ALL_PASSED if all(v.passed for v in verdicts) else SOME_FAILED


def print_calibration(args: argparse.Namespace, stdout: TextIO) -> int:
    if args.paths:
        raise UsageError("--calibrate reads its images from DIR/good and DIR/bad; give no other paths")
    labelled = [(path, folder == "bad") for folder in ("good", "bad") for path in _images_in(args.calibrate, folder)]
    args.paths = [str(path) for path, _ in labelled]
    verdicts = score_files(args)
    rows = calibration.calibrate(
        Judged(profile=args.profile, bad=bad, dimensions={n: (r.value, r.passed) for n, r in v.dimensions.items()},
                           threshold={n: r.threshold for n, r in v.dimensions.items()})
        for (_, bad), v in zip(labelled, verdicts)
    )
    if args.json:
        json.dump([dataclasses.asdict(row) for row in rows], stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(calibration.render(rows))
    return ALL_PASSED


def _images_in(directory: str, folder: str) -> list[Path]:
    found = Path(directory) / folder
    if not found.is_dir():
        raise UsageError(f"{found} is not a folder; --calibrate needs DIR/good and DIR/bad")
    files = sorted(path for path in found.iterdir() if path.is_file() and not path.name.startswith("."))
    if not files:
        raise UsageError(f"{found} holds no images")
    return files


def score_files(args: argparse.Namespace) -> list[ImageVerdict]:
    if not args.paths:
        raise UsageError("give image files to score, or --calibrate DIR")
    images = [_read(path, "image") for path in args.paths]
    reference = _read(args.reference, "reference photo") if args.reference else None
    profile = _profile(args.profile, _rules(args.rules) if args.rules else None)
    subject = _subject(args.subject, args.subject_kind) if args.subject else None
    if subject is not None:
        profile = with_subject_checks(profile, subject.kind)
    try:
        scorer = Scorer(Equipment(device=args.device, clip_model_dir=args.clip_model))
    except (ClipModelError, RuntimeError) as error:
        raise UsageError(str(error)) from None
    with scorer:
        missing = scorer.missing_capabilities(profile)
        if missing:
            raise UsageError(f"profile {profile.name!r} requires {', '.join(missing)}, which needs --clip-model")
        try:
            scoring = Scoring(profile=profile, prompt=args.prompt, reference=reference, requested_size=_size(args.size),
                              subject=subject)
            verdicts: list[ImageVerdict] = scorer.score(images, scoring)
            return verdicts
        except UndecodableImage as error:
            raise UsageError(f"cannot decode {args.paths[error.index]}: not an image OpenCV can read") from None
        except ValueError as error:
            raise UsageError(str(error)) from None


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror or error}") from None


def _subject(directory: str, kind: SubjectKind) -> Likeness:
    """A subject of the photos in `directory`, as an order's subject is compared with."""
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"--subject {directory} is not a folder of the subject's photos")
    photos = [_read(str(path), "subject photo") for path in sorted(folder.iterdir())
              if path.is_file() and not path.name.startswith(".")]
    if not photos:
        raise UsageError(f"--subject {directory} holds no photos")
    try:
        return likeness_of(OpenedSubject(subject_id=directory, kind=kind, photos=photos))
    except ValueError as error:
        raise UsageError(f"{directory}: {error}") from None


def _rules(path: str) -> QualityRules:
    try:
        return QualityRules.model_validate(yaml.safe_load(_read(path, "rules file")))
    except yaml.YAMLError as error:
        raise UsageError(f"rules file {path} is not JSON or YAML: {error}") from None
    except ValidationError as error:
        raise UsageError(f"rules file {path} is invalid: {error}") from None


def _profile(name: str, rules: QualityRules | None) -> Profile:
    try:
        return load_profile(name, rules)
    except ProfileError as error:
        raise UsageError(str(error)) from None


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = SIZE.fullmatch(text.strip())
    if not match or 0 in (int(match[1]), int(match[2])):
        raise UsageError(f"--size must look like 1024x768, got {text!r}")
    return int(match[1]), int(match[2])


def _json_number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _as_json(path: str, verdict: ImageVerdict) -> dict[str, Any]:
    dimensions = {
        name: {
            "value": _json_number(result.value),
            "threshold": result.threshold,
            "passed": result.passed,
            "reason": result.reason,
        }
        for name, result in verdict.dimensions.items()
    }
    return {"path": path, "passed": verdict.passed, "score": verdict.score, "fingerprint": verdict.fingerprint,
            "dimensions": dimensions}


def render_table(paths: Sequence[str], verdicts: Sequence[ImageVerdict]) -> str:
    lines = []
    for path, verdict in zip(paths, verdicts):
        outcome = "PASS" if verdict.passed else f"FAIL ({', '.join(verdict.failed)})"
        lines.append(f"{path}  {outcome}  score {verdict.score:.3f}")
        width = max(len(name) for name in verdict.dimensions) if verdict.dimensions else 0
        for name, result in verdict.dimensions.items():
            value = "-" if result.value is None else readable(result.value)
            status = "pass" if result.passed else "FAIL" if result.available else "n/a"
            note = "" if result.passed and result.value is not None else f"  {result.reason}"
            lines.append(f"  {name:<{width}}  {value:>10}  {readable(result.threshold):>8}  {status:<4}{note}")
    return "\n".join(lines) + "\n"

