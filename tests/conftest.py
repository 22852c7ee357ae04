import pytest

from zeptogpt import ModelConfig, SortTask, train


@pytest.fixture(scope="session")
def task() -> SortTask:
    return SortTask()


@pytest.fixture(scope="session")
def trained(task):
    """The default variant trained with the default recipe and seed: shared, never modified."""
    result = train(task, ModelConfig())
    assert result.results[0].solved
    return result.models[0]


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One model's tensors are too small to split; with two threads a busy machine is 4x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
