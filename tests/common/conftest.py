import pytest

from tests.common.journal_rig import Broker


@pytest.fixture
def broker(tmp_path, endpoints):
    """A Tansu of the test's own (journal_rig.Broker), stopped after the test."""
    own = Broker(tmp_path, endpoints.database_url)
    yield own
    own.stop()
