import pytest
from spine_helpers import passthrough_graph


@pytest.fixture
def make_graph():
    return passthrough_graph
