"""Places taken in fair turns (services/common/turns.py `FairPlaces`): a place given back goes
to the waiter whose turn it is, not to the one that came first; a canceled waiter gives it on;
a tenant let past the next turn (`FairTurns.pop`'s `within_a_turn`) goes ahead by one turn at most;
an item's cost may be known only as its turn comes."""

import asyncio

from services.common.turns import FairPlaces, FairTurns, Turn


async def taken_in_order(places: FairPlaces, turns: list[Turn]) -> list[str]:
    order: list[str] = []

    async def one(turn: Turn) -> None:
        await places.take(turn)
        order.append(turn.tenant)
        await asyncio.sleep(0)
        places.give_back()

    await asyncio.gather(*(one(turn) for turn in turns))
    return order


async def test_a_free_place_is_taken_at_once_and_a_full_set_queues():
    places = FairPlaces(2)
    await places.take(Turn(tenant="a"))
    assert not places.full
    await places.take(Turn(tenant="a"))
    assert places.full and places.busy == 2
    places.give_back()
    assert not places.full and places.busy == 1


async def test_a_place_given_back_goes_to_the_tenant_whose_turn_it_is_not_to_the_first_that_came():
    places = FairPlaces(1)
    await places.take(Turn(tenant="flood"))  # the place is held while both queue
    waiting = asyncio.create_task(taken_in_order(places, [Turn(tenant="flood")] * 6 + [Turn(tenant="other")]))
    await asyncio.sleep(0.01)
    places.give_back()
    order = await waiting
    assert order.index("other") <= 1, order  # first come first served would make it seventh
    assert places.busy == 0 and not places.full


async def test_a_waiter_canceled_as_its_place_came_gives_the_place_on():
    places = FairPlaces(1)
    await places.take(Turn(tenant="a"))
    first = asyncio.create_task(places.take(Turn(tenant="b")))
    second = asyncio.create_task(places.take(Turn(tenant="c")))
    await asyncio.sleep(0.01)
    places.give_back()  # handed to b's waiter ...
    first.cancel()  # ... which is canceled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)
    assert places.busy == 1
    places.give_back()
    assert places.busy == 0


def test_a_tenant_let_past_the_next_turn_goes_ahead_by_one_turn_at_most():
    turns: FairTurns[str] = FairTurns()
    for n in range(4):
        turns.push(f"busy-{n}", Turn(tenant="busy"))
        turns.push(f"quiet-{n}", Turn(tenant="quiet"))
    assert turns.pop() == "busy-0"  # both start at 0: the first to come
    others = lambda tenant: tenant != "busy"  # noqa: E731
    # The quiet tenant's turn starts at 0, the busy one's next at 1: it may go, and once more
    # (at 1, a tie), not a third time (at 2, a whole turn after the busy tenant's next).
    assert turns.pop(others, within_a_turn=True) == "quiet-0"
    assert turns.pop(others, within_a_turn=True) == "quiet-1"
    assert turns.pop(others, within_a_turn=True) is None
    assert turns.pop(others) == "quiet-2"  # without the bound, on and on
    assert turns.pop() == "busy-1"



def test_an_items_cost_may_be_known_only_as_its_turn_comes():
    costs = {"long-0": 3.0}
    turns: FairTurns[str] = FairTurns(cost_of=lambda item: costs.get(item, 1.0))
    for n in range(3):
        turns.push(f"long-{n}", Turn(tenant="long"))
        turns.push(f"short-{n}", Turn(tenant="short"))
    assert turns.pop() == "long-0"  # it costs three turns: the short tenant's three go first
    assert [turns.pop() for _ in range(3)] == ["short-0", "short-1", "short-2"]
    assert turns.pop() == "long-1"
