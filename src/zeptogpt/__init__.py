"""ZeptoGPT: the smallest GPT that learns Python's sorted().

Usage::

    from zeptogpt import SortTask, ModelConfig, train, evaluate, format_trace
    task = SortTask()
    model = train(task, ModelConfig()).models[0]
    print(evaluate(model, task))          # ... Model accuracy on 27 triples: 27/27
    print(format_trace(model, task, "caa"))
"""

from zeptogpt.checkpoint import Checkpoint, CheckpointError, load, save
from zeptogpt.evaluation import Decoding, Evaluation, decode, evaluate, format_trace
from zeptogpt.model import VARIANTS, ModelConfig, ZeptoGPT, variant_name
from zeptogpt.task import InputError, SortTask
from zeptogpt.training import Recipe, SeedResult, TrainResult, train

__all__ = [
    "Checkpoint", "CheckpointError", "Decoding", "Evaluation", "InputError", "ModelConfig",
    "Recipe", "SeedResult", "SortTask", "TrainResult", "VARIANTS", "ZeptoGPT", "decode",
    "evaluate", "format_trace", "load", "save", "train", "variant_name",
]
