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


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh current directory, so `runs/` is created there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cli(capsys):
    """Run the real CLI in-process: ``code, out, err = cli("sort", "caa")``."""
    from zeptogpt.cli import main

    def run(*argv: str):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse exits on usage errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
