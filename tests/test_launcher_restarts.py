"""The launcher starts an exited service again after a pause that doubles while it keeps
exiting (a crash loop), and falls back to the shortest pause once a run lasted."""

from genline_stack.launcher import RESTART_PAUSE_MAX_S, RESTART_PAUSE_S, RESTART_RESET_S, Restarts


def exits_in_a_row(restarts: Restarts, times: int, now: float = 0.0) -> list[float]:
    pauses = []
    for _ in range(times):
        pause = restarts.exited("scorer", now)
        assert not restarts.ready_to_start("scorer", now + pause - 0.01)
        now += pause
        assert restarts.ready_to_start("scorer", now)
        pauses.append(pause)
        now += 1.0  # exits again a second after its start
    return pauses


def test_a_crash_loop_waits_longer_each_time_up_to_the_ceiling():
    pauses = exits_in_a_row(Restarts(), 8)
    assert pauses[:3] == [RESTART_PAUSE_S, 2 * RESTART_PAUSE_S, 4 * RESTART_PAUSE_S]
    assert pauses[-1] == RESTART_PAUSE_MAX_S


def test_a_service_that_ran_a_while_is_started_again_at_once():
    restarts = Restarts()
    exits_in_a_row(restarts, 4)
    later = 1_000 + RESTART_RESET_S
    assert restarts.exited("scorer", later) == RESTART_PAUSE_S


def test_an_exit_is_noted_once_until_the_restart():
    restarts = Restarts()
    assert restarts.exited("ledger", 0.0) == RESTART_PAUSE_S
    assert restarts.exited("ledger", 0.5) == RESTART_PAUSE_S  # the same exit, seen again
    assert not restarts.ready_to_start("ledger", 0.5)
    assert restarts.ready_to_start("ledger", 1.0)
    assert not restarts.ready_to_start("ledger", 1.5)  # started: nothing due
