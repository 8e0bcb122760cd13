"""Paid tiers first; tenants of one tier share the router fairly."""

import pytest

from services.router.fairness import FairQueue


def drain(queue: FairQueue) -> list:
    order = []
    while (job := queue.pop()) is not None:
        order.append(job)
    return order


def test_small_tenant_is_not_starved_by_a_large_backlog():
    queue = FairQueue()
    for n in range(1000):
        queue.push(("A", n), tier="stable", tenant="A")
    for n in range(4):
        queue.push(("B", n), tier="stable", tenant="B")
    order = drain(queue)
    last_of_b = max(i for i, job in enumerate(order) if job[0] == "B")
    hundredth_of_a = [i for i, job in enumerate(order) if job[0] == "A"][99]
    assert last_of_b < hundredth_of_a
    assert last_of_b < 10
    assert len(order) == 1004


def test_jobs_of_one_tenant_keep_their_order():
    queue = FairQueue()
    for n in range(5):
        queue.push(n, tier="fast", tenant="A")
    assert drain(queue) == [0, 1, 2, 3, 4]


def test_higher_tiers_are_served_first():
    queue = FairQueue(tier_order=("stable", "fast", "low-cost"))
    queue.push("cheap", tier="low-cost", tenant="A")
    queue.push("fast", tier="fast", tenant="B")
    queue.push("stable", tier="stable", tenant="C")
    assert drain(queue) == ["stable", "fast", "cheap"]


def test_share_is_by_images_not_jobs():
    queue = FairQueue(quantum=4)
    for n in range(8):
        queue.push(("A", n), tier="stable", tenant="A", cost=1)
    for n in range(2):
        queue.push(("B", n), tier="stable", tenant="B", cost=4)
    first_eight = drain(queue)[:6]
    # A spends its quantum of 4 on four one-image jobs, B on one four-image job.
    assert [job[0] for job in first_eight] == ["A", "A", "A", "A", "B", "A"]


def test_a_job_dearer_than_the_quantum_still_gets_served():
    queue = FairQueue(quantum=2)
    queue.push("big", tier="stable", tenant="A", cost=9)
    queue.push("small", tier="stable", tenant="B", cost=1)
    assert sorted(drain(queue)) == ["big", "small"]


def test_an_idle_tenant_does_not_bank_credit():
    queue = FairQueue(quantum=4)
    queue.push("a0", tier="stable", tenant="A", cost=1)
    assert queue.pop() == "a0"
    for n in range(3):
        queue.push(f"b{n}", tier="stable", tenant="B", cost=1)
    for n in range(8):
        queue.push(f"a{n + 1}", tier="stable", tenant="A", cost=1)
    order = drain(queue)
    assert order.index("b2") < order.index("a5")


def test_len_and_pending_count_queued_jobs():
    queue = FairQueue()
    queue.push(1, tier="stable", tenant="A")
    queue.push(2, tier="low-cost", tenant="A")
    assert len(queue) == 2
    assert queue.pending("stable", "A") == 1
    queue.pop()
    assert len(queue) == 1


@pytest.mark.parametrize(("tier", "cost"), [("gold", 1), ("stable", 0)])
def test_push_rejects_unknown_tiers_and_free_jobs(tier, cost):
    with pytest.raises(ValueError):
        FairQueue().push("x", tier=tier, tenant="A", cost=cost)


def test_a_higher_plan_is_served_before_any_tier_of_a_lower_one():
    queue = FairQueue()
    for n in range(3):
        queue.push(("free", n), tier="stable", tenant="free-tenant")
    queue.push(("pro", 0), tier="low-cost", tenant="pro-tenant", priority=1)
    queue.push(("pro", 1), tier="stable", tenant="pro-tenant", priority=1)
    assert drain(queue) == [("pro", 1), ("pro", 0), ("free", 0), ("free", 1), ("free", 2)]
    assert queue.pending("stable", "pro-tenant", priority=1) == 0


def test_tenants_of_one_plan_still_take_fair_turns():
    queue = FairQueue()
    for n in range(6):
        queue.push(("A", n), tier="stable", tenant="A", priority=2)
    queue.push(("B", 0), tier="stable", tenant="B", priority=2)
    assert drain(queue).index(("B", 0)) < 6
