"""What a service consumes, declared once: the union of the event types it handles and the
union of those on its topics it passes over. The rest is derived from it: the topics it
subscribes to (those of the handled types' publishers), what the consumer dispatches and
what it skips. A consumer whose declaration leaves a type on its topics without a branch,
or whose handlers do not match it, refuses to start (`check`); an event that reaches it
anyway (a type defined after it started) goes to the DLQ, never silently away."""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import get_args

from services.common.contracts import EVENT_TYPES, Event


class Unbranched(ValueError):
    """A consumer's declaration and its handlers disagree with the contracts: it does not start."""


def types_of(union: object) -> tuple[type[Event], ...]:
    """The event types of a union (`A | B`), or of one type alone."""
    return get_args(union) or (union,)  # a lone class is its own union


@dataclass(frozen=True, kw_only=True)
class Consumption:
    """A service's declaration of the events it takes from the bus (see the module's docstring)."""

    service: str
    handled: tuple[type[Event], ...]
    passed_over: tuple[type[Event], ...]
    publishers: tuple[str, ...]  # whose topics it reads

    @classmethod
    def of(cls, service: str, handled: object, *, passed_over: object = None) -> "Consumption":
        """From the unions a service declares: `Consumption.of("router", Consumed, PassedOver)`.
        It reads the topics of the types it handles (one that travels on every topic,
        AuditRecorded, names none)."""
        handled_types = types_of(handled)
        return cls(service=service, handled=handled_types,
                   passed_over=types_of(passed_over) if passed_over is not None else (),
                   publishers=tuple(sorted({t.publisher for t in handled_types if not t.on_every_topic})))

    @classmethod
    def passing_over_the_rest(cls, service: str, publishers: Iterable[str],
                              *, handled: Collection[type[Event]]) -> "Consumption":
        """A consumer of these topics that handles `handled` and says it passes over everything
        else on them (what tests and tools subscribe with; services declare theirs)."""
        publishers = tuple(publishers)
        return cls(service=service, handled=tuple(handled), publishers=publishers,
                   passed_over=tuple(t for t in on_topics_of(publishers) if t not in handled))

    def on_its_topics(self) -> tuple[type[Event], ...]:
        return on_topics_of(self.publishers)

    def without_branch(self) -> tuple[type[Event], ...]:
        """The event types on its topics it neither handles nor passes over."""
        branched = {*self.handled, *self.passed_over}
        return tuple(t for t in self.on_its_topics() if t not in branched)

    def passes_over(self, event_type: type[Event]) -> bool:
        return event_type in self.passed_over

    def check(self, registered: Collection[type[Event]]) -> None:
        """Refuse, naming the types, a declaration that leaves a type on its topics without a
        branch or handles and passes over one type at once, or whose handlers (`registered`)
        are not the types it handles."""
        problems = []
        if missing := self.without_branch():
            problems.append(f"no branch for {names(missing)} on its topics: handle each or pass it over")
        if both := set(self.handled) & set(self.passed_over):
            problems.append(f"{names(both)} both handled and passed over")
        if unhandled := set(self.handled) - set(registered):
            problems.append(f"no handler for {names(unhandled)}, which it declares it handles")
        if undeclared := set(registered) - set(self.handled):
            problems.append(f"a handler for {names(undeclared)}, which it does not declare")
        if problems:
            raise Unbranched(f"{self.service} does not start: " + "; ".join(problems))


def on_topics_of(publishers: Iterable[str]) -> tuple[type[Event], ...]:
    """Every event type that may arrive on these publishers' topics."""
    publishers = set(publishers)
    return tuple(t for t in EVENT_TYPES.values() if t.publisher in publishers or (t.on_every_topic and publishers))


def names(types: Iterable[type[Event]]) -> str:
    return ", ".join(sorted(f"{t.__name__} ({t.event_type})" for t in types))
