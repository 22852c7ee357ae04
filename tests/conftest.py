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
