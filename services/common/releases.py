"""Releases: this one, the ones before it, and what each left behind for the next to keep
working with (DESIGN.md §15, docs/releases.md).

Operators upgrade with rolling updates, so a release runs beside the one before it on the
same topics and schema. What that release's code reads is frozen when it is cut, in
`release_records/<version>.json`: the events it reads (their JSON Schema, `event_shapes.py`)
and the migrations it applied. This release writes its events for the oldest release whose
consumers may still read them (`GENLINE_EVENTS_COMPATIBLE_WITH`, the previous one by default),
as Kafka's brokers keep writing what the old ones read until the operator raises
`inter.broker.protocol.version`; it reads what any release wrote.
"""

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

# This release; pyproject.toml's version and the images' tags in deploy/k8s say the same
# (tests/test_releases.py).
RELEASE = "0.2.0"


@dataclass(frozen=True, kw_only=True)
class Release:
    """A release: its version, and the commit it was cut from (None while it is being made).
    The commit is written here, not only as a tag, since a clone need not carry tags."""

    version: str
    commit: str | None


# Oldest first; the last is this one.
RELEASES = (
    Release(version="0.1.0", commit="53538e7a28041ba7c257f387b69410afba61f9ef"),
    Release(version=RELEASE, commit=None),
)
# The release this one promises to run beside during a rolling update (and back).
PREVIOUS = RELEASES[-2]
VERSIONS = tuple(release.version for release in RELEASES)


class UnknownRelease(ValueError):
    pass


def release_of(version: str) -> Release:
    for release in RELEASES:
        if release.version == version:
            return release
    raise UnknownRelease(f"no release {version!r}: this is {RELEASE}, which knows {', '.join(VERSIONS)}")


@cache
def record_of(version: str) -> dict[str, Any]:
    """What a past release's code reads, as frozen when it was cut: `events` (event_shapes.py's
    shapes of every event type it knows) and `migrations` (each package's files, in order)."""
    release_of(version)
    if version == RELEASE:
        raise UnknownRelease(f"{RELEASE} is this release: its record is its code (`genline version --record`)")
    text = (resources.files("services.common") / "release_records" / f"{version}.json").read_text()
    record: dict[str, Any] = json.loads(text)
    return record

