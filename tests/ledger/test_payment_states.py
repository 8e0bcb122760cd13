"""A payment's recorded state only moves forward, whatever order the processor's events come
in: a checkout goes open → awaiting payment → paid, failed or expired, and paid and failed
are final; an auto top-up's charge goes requested → processing → succeeded or failed, and
neither end moves. The rule is checked on every order of every lifecycle (hypothesis), and
through the ledger's webhook with the events of real checkouts delivered in every order,
some twice, against the Stripe simulator."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ledger.payments import rules
from tests.ledger.test_stripe_payments import billing, tenant  # noqa: F401  (the fixture)

pytestmark = pytest.mark.processes  # serves the ledger's HTTP API and the simulator

# A checkout's lifecycles as Stripe's events tell them, in the order they happen, and where
# each ends: what the events say, whichever order they arrive in.
LIFECYCLES = {
    "paid by card": (["paid"], "paid"),
    "settled later": (["awaiting_payment", "paid"], "paid"),
    "failed later": (["awaiting_payment", "failed"], "failed"),
    "expired": (["expired"], "expired"),
}


@given(st.sampled_from(sorted(LIFECYCLES)), st.data())
def test_a_checkout_ends_where_its_lifecycle_ends_whatever_the_order_of_its_events(name, data):
    said, end = LIFECYCLES[name]
    arrived = data.draw(st.lists(st.sampled_from(said), min_size=len(said), max_size=3 * len(said))
                        .filter(lambda events: set(events) == set(said)).flatmap(st.permutations))
    state = "open"
    for told in arrived:
        state = rules.checkout_after(state, told)
    assert state == end, arrived


@given(st.lists(st.sampled_from(["processing", "succeeded", "failed"]), max_size=8))
def test_an_auto_top_up_charge_never_leaves_its_end(told):
    state, ended = "requested", None
    for step in told:
        state = rules.attempt_after(state, step)
        ended = ended or (state if state in ("succeeded", "failed") else None)
        assert ended is None or state == ended


async def test_a_checkout_that_failed_stays_failed_whatever_comes_after(billing):  # noqa: F811
    """The issue's order: async_payment_failed, then checkout.session.completed (unpaid),
    as Stripe may deliver them."""
    buyer = tenant()
    billing.stripe.auto_deliver = False
    opened = await billing.checkout(buyer)
    await billing.stripe.pay_session(opened["session_id"], settles_later=True)
    await billing.stripe.settle_session(opened["session_id"], succeeded=False)
    [completed] = billing.stripe.events_of("checkout.session.completed")
    [failed] = billing.stripe.events_of("checkout.session.async_payment_failed")

    assert await billing.stripe.deliver(failed) == 200
    assert await billing.stripe.deliver(completed) == 200

    assert [c["state"] for c in (await billing.billing(buyer))["checkouts"]] == ["failed"]
    assert (await billing.account(buyer))["available"] == 0


async def test_every_order_of_a_checkouts_events_records_where_it_ended(billing):  # noqa: F811
    billing.stripe.auto_deliver = False
    ends: dict[bool, set] = {True: set(), False: set()}
    for succeeded in (True, False):
        for order in itertools.permutations(range(3)):
            buyer = tenant()
            opened = await billing.checkout(buyer)
            first = len(billing.stripe.events)
            await billing.stripe.pay_session(opened["session_id"], settles_later=True)
            await billing.stripe.settle_session(opened["session_id"], succeeded=succeeded)
            told = [e for e in billing.stripe.events[first:] if e["type"].startswith("checkout.session.")]
            told.append(told[0])  # the completion comes twice
            for index in order:
                assert await billing.stripe.deliver(told[index]) == 200
            [checkout] = (await billing.billing(buyer))["checkouts"]
            ends[succeeded].add((checkout["state"], (await billing.account(buyer))["available"]))
    assert ends == {True: {("paid", 1000)}, False: {("failed", 0)}}
