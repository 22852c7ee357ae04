"""ZeptoGPT: the smallest GPT that learns Python's sorted().

Usage::

    from zeptogpt import SortTask, ModelConfig, train, evaluate, format_trace
    task = SortTask()
    model = train(task, ModelConfig()).models[0]
    print(evaluate(model, task))          # ... Model accuracy on 27 triples: 27/27
    print(format_trace(model, task, "caa"))

The names below are imported when first used, not with the package: torch takes a second or
more to import, and ``zeptogpt params`` or ``--help`` need none of it.
"""

from __future__ import annotations

import importlib

_HOME = {  # public name -> the module that defines it
    "ModelConfig": "config", "VARIANTS": "config", "variant_name": "config",
    "SortTask": "task", "InputError": "task",
    "ZeptoGPT": "model",
    "Recipe": "training", "SeedResult": "training", "TrainResult": "training", "train": "training",
    "Decoding": "evaluation", "Evaluation": "evaluation", "decode": "evaluation",
    "evaluate": "evaluation", "format_trace": "evaluation",
    "Checkpoint": "checkpoint", "CheckpointError": "checkpoint", "load": "checkpoint",
    "save": "checkpoint",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'zeptogpt' has no attribute {name!r}")
    return getattr(importlib.import_module(f"zeptogpt.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
