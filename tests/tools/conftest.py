"""Fixtures shared by the tool tests."""
import pytest
from shapes import make_shapes_dataset


@pytest.fixture(scope='module')
def data_root(tmp_path_factory) -> str:
    """A shapes dataset of 4 training and 2 validation images of 64 px, one per test module."""
    data_root = str(tmp_path_factory.mktemp('shapes')) + '/'
    make_shapes_dataset(data_root, num_train=4, num_val=2, size=64)
    return data_root
