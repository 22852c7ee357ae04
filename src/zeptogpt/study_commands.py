"""The commands that study a trained model: ``explain`` and ``export``."""

from __future__ import annotations

import argparse

from zeptogpt.commands import (
    UserError,
    _check_writable,
    _load_or_train,
    _saved_and_task,
    _train_first,
)


def cmd_explain(args: argparse.Namespace) -> int:
    """`zeptogpt explain`: measure how the model sorts and write the page about it."""
    from zeptogpt.explain import explain, group_seeds, markdown, seed_reports, summary
    from zeptogpt.files import write_atomic

    _check_writable(args.out)
    saved, task = _saved_and_task(args)  # the task is checked before any training
    if task.varies or task.n_inputs > 100_000:
        why = "several lengths" if task.varies else f"{task.n_inputs:,} inputs"
        raise UserError(f"explain measures every input of a task of one length and at most "
                        f"100,000 inputs; {task.name} has {why}")
    checkpoint = saved or _train_first(args)
    report = explain(checkpoint.model, task)
    groups = group_seeds(seed_reports(task, checkpoint.model.config, args.seeds)) \
        if args.seeds else None
    command = "zeptogpt explain" + (f" --seeds {args.seeds}" if args.seeds != 256 else "")
    try:
        write_atomic({args.out: markdown(report, groups, command).encode()})
    except OSError as e:
        raise UserError(f"cannot write {args.out}: {e.strerror or e}") from None
    print(summary(report, groups))
    print(f"Wrote {args.out}")
    return 0

def cmd_export(args: argparse.Namespace) -> int:
    """`zeptogpt export --to transformer-lens`: the model as a TransformerLens file."""
    _check_writable(args.out)
    checkpoint = _load_or_train(args)
    try:
        from zeptogpt.export import save_transformer_lens

        save_transformer_lens(checkpoint.model, args.out, checkpoint.task.vocab)
    except ImportError as e:
        raise UserError(str(e).splitlines()[0]) from None
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"Saved {args.out} (load it with TransformerLens: docs/transformer-lens.md)")
    return 0
