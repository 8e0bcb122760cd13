"""How a service writes its events during a rolling update: for the oldest release whose
consumers may still read them (`GENLINE_EVENTS_COMPATIBLE_WITH`, the previous release by
default), so that release's consumers, which refuse a member they do not know, read every
event this one writes. As Kafka's brokers do until `inter.broker.protocol.version` is raised:
the members that release does not know are left out (`event_shapes.project`, only for the
types this release widened), an event type it does not know is not written at all
(UnwritableEvent), and a feature whose member would be lost is refused before anything is
written (`withheld`). Once every replica runs this release, the operator raises the setting
to it and events go out whole."""

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_json

from services.common.contracts import Event
from services.common.event_shapes import Shapes, current_shapes, project, project_model, whole_models, widened
from services.common.releases import RELEASE, record_of
from services.common.settings import ServiceSettings


class UnwritableEvent(RuntimeError):
    """An event of a type the readers' release does not know: its consumers would dead-letter
    it. The feature that publishes it waits until the setting is raised (`writes`)."""


@dataclass(frozen=True, kw_only=True)
class ReadersShapes:
    """What the readers' release reads, and which of this release's event types it reads
    narrower than this release writes them."""

    shapes: Shapes
    narrower: frozenset[str] = field(default_factory=frozenset)
    whole: frozenset[str] = field(default_factory=frozenset)  # models it reads whole, not walked


@cache
def readers_shapes(version: str) -> ReadersShapes | None:
    """None when the readers run this release: events go out as they are."""
    if version == RELEASE:
        return None
    shapes = record_of(version)["events"]
    return ReadersShapes(shapes=shapes, narrower=widened(shapes, current_shapes()),
                         whole=whole_models(shapes, current_shapes()))


@dataclass(frozen=True, kw_only=True)
class EventWriter:
    """Where a service's events go (its topics' namespace) and for which release's readers."""

    namespace: str
    readers: str = RELEASE

    @classmethod
    def of(cls, settings: ServiceSettings) -> "EventWriter":
        return cls(namespace=settings.topic_namespace, readers=settings.events_compatible_with)

    def writes(self, event_type: type[Event]) -> bool:
        """Whether events of this type may be written now: the readers' release knows it."""
        shapes = readers_shapes(self.readers)
        return shapes is None or event_type.event_type in shapes.shapes["events"]

    def body(self, event: Event) -> bytes:
        """The event's JSON as the readers' release reads it."""
        shapes = readers_shapes(self.readers)
        if shapes is None:
            return event.model_dump_json().encode()
        if event.event_type not in shapes.shapes["events"]:
            raise UnwritableEvent(f"{event.event_type} is not written while this release writes for {self.readers}'s"
                                  f" consumers, which do not know it (GENLINE_EVENTS_COMPATIBLE_WITH)")
        if event.event_type not in shapes.narrower:
            return event.model_dump_json().encode()
        projected, _ = project(event.model_dump(mode="json"), event.event_type, shapes=shapes.shapes, whole=shapes.whole)
        return to_json(projected)

    def shared(self, value: BaseModel) -> str:
        """A value of one of the events' models kept in a table that the readers' release's
        replicas read too (the router's job specs, which a replica rolled back to that release
        takes its attempts from): its JSON as that release reads it, as `body` writes an event.
        What it would leave out was refused before the event that brought it was written
        (`withheld`)."""
        shapes = readers_shapes(self.readers)
        model = type(value).__name__
        if shapes is None or model not in shapes.shapes["$defs"]:
            return value.model_dump_json()
        projected, _ = project_model(value.model_dump(mode="json"), model, shapes=shapes.shapes, whole=shapes.whole)
        return to_json(projected).decode()

    def withheld(self, event: Event) -> list[str]:
        """The members the event sets (to other than their defaults) that the readers' release
        cannot carry: what would be lost if it were written now."""
        shapes = readers_shapes(self.readers)
        if shapes is None or event.event_type not in shapes.narrower:
            return []
        payload: dict[str, Any] = event.model_dump(mode="json", exclude_defaults=True)
        return project(payload, event.event_type, shapes=shapes.shapes, whole=shapes.whole)[1]
