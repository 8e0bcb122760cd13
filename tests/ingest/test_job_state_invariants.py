"""The job state machine asserts what every transition keeps true where one is decided
(jobs/domain.apply_event): a planted broken view, or a transition that breaks them, is
caught at once instead of being stored."""

from datetime import timedelta

import pytest

from services.common.contracts import JobCanceled
from services.ingest.jobs import domain
from tests.ingest.test_read_model import EVENTS, SPEC, T0


def test_a_view_holding_back_a_final_state_it_already_shows_is_caught():
    planted = domain.submitted_view(SPEC).model_copy(update={"state": "succeeded", "reached": "failed"})
    with pytest.raises(AssertionError, match="holds 'failed' back while showing succeeded"):
        domain.apply_event(planted, EVENTS[0], at=T0 + timedelta(seconds=1))


def test_a_transition_back_or_out_of_a_final_state_is_caught():
    view = domain.submitted_view(SPEC)
    ended = view.model_copy(update={"state": "canceled"})
    with pytest.raises(AssertionError, match="moved back"):
        domain.checked_transition(view.model_copy(update={"state": "scoring"}), view)
    with pytest.raises(AssertionError, match="final job"):
        domain.checked_transition(ended, view.model_copy(update={"state": "failed"}))


def test_the_transitions_events_decide_keep_them():
    view = domain.submitted_view(SPEC)
    for i, event in enumerate([*EVENTS, JobCanceled(job_id=view.id, tenant_id=view.tenant_id, reason="late")]):
        view = domain.apply_event(view, event, at=T0 + timedelta(seconds=i + 1))
    assert view.state == "succeeded" and view.reached is None
