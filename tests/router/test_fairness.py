"""Tenants share the router in fair turns; a higher plan is a larger share, never starvation of
the plans below; within a tenant, interactive jobs go ahead of bulk ones, then paid tiers."""

import pytest

from services.router.fairness import FairQueue, Place


def drain(queue: FairQueue) -> list:
    order = []
    while (job := queue.pop()) is not None:
        order.append(job)
    return order


def test_small_tenant_is_not_starved_by_a_large_backlog():
    queue = FairQueue()
    for n in range(1000):
        queue.push(("A", n), Place(tenant="A", tier="stable"))
    for n in range(4):
        queue.push(("B", n), Place(tenant="B", tier="stable"))
    order = drain(queue)
    last_of_b = max(i for i, job in enumerate(order) if job[0] == "B")
    hundredth_of_a = [i for i, job in enumerate(order) if job[0] == "A"][99]
    assert last_of_b < hundredth_of_a
    assert last_of_b < 10
    assert len(order) == 1004


def test_jobs_of_one_tenant_keep_their_order():
    queue = FairQueue()
    for n in range(5):
        queue.push(n, Place(tenant="A", tier="fast"))
    assert drain(queue) == [0, 1, 2, 3, 4]


def test_at_a_tie_between_tenants_the_higher_tier_goes_first():
    queue = FairQueue(tier_order=("stable", "fast", "low-cost"))
    queue.push("cheap", Place(tenant="A", tier="low-cost"))
    queue.push("fast", Place(tenant="B", tier="fast"))
    queue.push("stable", Place(tenant="C", tier="stable"))
    assert drain(queue) == ["stable", "fast", "cheap"]


def test_a_tenants_paid_tiers_go_before_its_cheaper_ones():
    queue = FairQueue()
    queue.push("cheap", Place(tenant="A", tier="low-cost"))
    queue.push("stable", Place(tenant="A", tier="stable"))
    assert drain(queue) == ["stable", "cheap"]


def test_share_is_by_images_not_jobs():
    queue = FairQueue()
    for n in range(16):
        queue.push(("A", n), Place(tenant="A", tier="stable", cost=1))
    for n in range(4):
        queue.push(("B", n), Place(tenant="B", tier="stable", cost=4))
    order = drain(queue)[:10]
    # Two four-image jobs of B take as many turns of the router as eight one-image jobs of A.
    images = {"A": sum(1 for job in order if job[0] == "A"), "B": 4 * sum(1 for job in order if job[0] == "B")}
    assert images == {"A": 8, "B": 8}, order


def test_a_job_dearer_than_the_others_still_gets_served():
    queue = FairQueue()
    queue.push("big", Place(tenant="A", tier="stable", cost=9))
    queue.push("small", Place(tenant="B", tier="stable", cost=1))
    assert sorted(drain(queue)) == ["big", "small"]


def test_an_idle_tenant_does_not_bank_credit():
    queue = FairQueue()
    queue.push("a0", Place(tenant="A", tier="stable", cost=1))
    assert queue.pop() == "a0"
    for n in range(3):
        queue.push(f"b{n}", Place(tenant="B", tier="stable", cost=1))
    for n in range(8):
        queue.push(f"a{n + 1}", Place(tenant="A", tier="stable", cost=1))
    order = drain(queue)
    assert order.index("b2") < order.index("a5")


def test_a_tenant_that_paused_keeps_its_debt():
    """A tenant that was served a large job and comes back at once waits for the others'
    turns: emptying its queue for a moment wipes nothing."""
    queue = FairQueue()
    queue.push("a-big", Place(tenant="A", tier="stable", cost=8))
    queue.push("b0", Place(tenant="B", tier="stable", cost=1))
    assert queue.pop() == "a-big"
    queue.push("a-next", Place(tenant="A", tier="stable", cost=1))
    for n in range(1, 5):
        queue.push(f"b{n}", Place(tenant="B", tier="stable", cost=1))
    assert drain(queue) == ["b0", "b1", "b2", "b3", "b4", "a-next"]


def test_len_and_pending_count_queued_jobs():
    queue = FairQueue()
    queue.push(1, Place(tenant="A", tier="stable"))
    queue.push(2, Place(tenant="A", tier="low-cost"))
    assert len(queue) == 2
    assert queue.pending("A") == 2
    queue.pop()
    assert len(queue) == 1 and queue.pending("A") == 1


@pytest.mark.parametrize(("tier", "cost", "job_priority"), [("gold", 1, "bulk"), ("stable", 0, "bulk"),
                                                            ("stable", 1, "urgent")])
def test_push_rejects_unknown_tiers_and_priorities_and_free_jobs(tier, cost, job_priority):
    with pytest.raises(ValueError):
        FairQueue().push("x", Place(tenant="A", tier=tier, cost=cost, job_priority=job_priority))


def test_a_higher_plan_is_a_larger_share_not_the_only_one():
    queue = FairQueue()
    for n in range(40):
        queue.push(("enterprise", n), Place(tenant="big", tier="stable", priority=2))
    for n in range(10):
        queue.push(("free", n), Place(tenant="small", tier="stable", priority=0))
    order = drain(queue)
    first_twenty = [plan for plan, _ in order[:20]]
    # Four turns to one (enterprise's share is 4, free's 1): the free tenant is served all along.
    assert first_twenty.count("enterprise") == 16 and first_twenty.count("free") == 4, first_twenty
    assert order.index(("free", 0)) < 2
    assert max(order.index(("free", n)) for n in range(10)) < len(order) - 1


def test_a_higher_plan_goes_first_among_tenants_that_just_arrived():
    queue = FairQueue()
    for n in range(3):
        queue.push(("free", n), Place(tenant="free-tenant", tier="stable"))
    queue.push(("pro", 0), Place(tenant="pro-tenant", tier="low-cost", priority=1))
    queue.push(("pro", 1), Place(tenant="pro-tenant", tier="stable", priority=1))
    order = drain(queue)
    assert order[0] == ("pro", 1)  # its tier first among its own jobs
    assert order.index(("pro", 0)) < order.index(("free", 1))


def test_tenants_of_one_plan_still_take_fair_turns():
    queue = FairQueue()
    for n in range(6):
        queue.push(("A", n), Place(tenant="A", tier="stable", priority=2))
    queue.push(("B", 0), Place(tenant="B", tier="stable", priority=2))
    assert drain(queue).index(("B", 0)) < 6


def test_a_tenants_interactive_jobs_go_ahead_of_its_bulk_ones():
    queue = FairQueue()
    for n in range(20):
        queue.push(("bulk", n), Place(tenant="A", tier="stable", job_priority="bulk"))
    queue.push(("interactive", 0), Place(tenant="A", tier="low-cost", job_priority="interactive"))
    queue.push(("other", 0), Place(tenant="B", tier="stable", job_priority="bulk"))
    order = drain(queue)
    assert order[0] == ("interactive", 0)
    # The priority orders a tenant's own jobs only: the other tenant's bulk job still has its turn.
    assert order.index(("other", 0)) < 3


def test_a_turn_among_some_tenants_only():
    queue = FairQueue()
    for n in range(3):
        queue.push(("A", n), Place(tenant="A", tier="stable"))
    queue.push(("B", 0), Place(tenant="B", tier="stable"))
    assert queue.pop(only=lambda tenant: tenant != "A") == ("B", 0)
    assert queue.pop(only=lambda tenant: tenant == "C") is None
    assert drain(queue) == [("A", 0), ("A", 1), ("A", 2)]
