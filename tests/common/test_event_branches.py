"""Every event a consumer may receive has its branch: a handler registered for it, a case of
the ledger's `decide`, or its name in the consumer's PASSED_OVER. What a consumer may receive
is derived from the contracts (each event's publisher, EVENT_TYPES) and SUBSCRIPTIONS, so a
new event type fails here, for each consumer that reads its topic, until each says what it
does with it."""

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterable

import pytest

from services.common.contracts import EVENT_TYPES, SUBSCRIPTIONS, AuditRecorded, Event
from services.delivery import handlers as delivery
from services.ledger import handlers as ledger
from services.router import handlers as router
from services.scorer import handlers as scorer

# Audit records travel on the topic of whichever service acts (AuditRecorded.service).
ON_EVERY_TOPIC = (AuditRecorded,)


def syntax_of(function: Callable[..., object]) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def registered_types(register: Callable[..., None]) -> set[str]:
    """The event types `register` gives a handler (`@consumer.on(JobErased, …)`)."""
    return {node.args[0].id for node in ast.walk(syntax_of(register))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "on"
            and node.args and isinstance(node.args[0], ast.Name)}


def cased_types(function: Callable[..., object]) -> set[str]:
    """The classes the cases of `function`'s match statements name (`case JobClosed() | …`)."""
    return {node.cls.id for node in ast.walk(syntax_of(function))
            if isinstance(node, ast.MatchClass) and isinstance(node.cls, ast.Name)}


CONSUMERS = {
    "router": (lambda: registered_types(router.register), router.PASSED_OVER),
    "scorer": (lambda: registered_types(scorer.register), scorer.PASSED_OVER),
    "delivery": (lambda: registered_types(delivery.register), delivery.PASSED_OVER),
    "ledger": (lambda: cased_types(ledger.decide), ledger.PASSED_OVER),
}


def receivable(service: str, contracts: Iterable[type[Event]]) -> set[str]:
    """The event types on the topics `service` reads."""
    return {cls.__name__ for cls in contracts
            if cls.publisher in SUBSCRIPTIONS[service] or cls in ON_EVERY_TOPIC}


def without_branch(service: str) -> set[str]:
    branches, passed_over = CONSUMERS[service]
    return receivable(service, EVENT_TYPES.values()) - branches() - {cls.__name__ for cls in passed_over}


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_every_event_a_consumer_may_receive_has_its_branch(service):
    branches, passed_over = CONSUMERS[service]
    assert without_branch(service) == set()
    assert branches() & {cls.__name__ for cls in passed_over} == set(), "handled and passed over at once"


def test_the_ledger_decides_each_type_it_consumes():
    assert cased_types(ledger.decide) == {cls.__name__ for cls in ledger.CONSUMED}


@pytest.fixture
def new_scorer_event():
    class ImagesRescored(Event):
        event_type = "genline.images.rescored.v1"
        publisher = "scorer"

    yield ImagesRescored
    del EVENT_TYPES[ImagesRescored.event_type]


def test_a_new_event_type_without_its_branches_is_caught(new_scorer_event):
    caught = {service for service in CONSUMERS if new_scorer_event.__name__ in without_branch(service)}
    assert caught == {service for service in CONSUMERS if "scorer" in SUBSCRIPTIONS[service]} == {"router", "delivery",
                                                                                                    "ledger"}
