"""The SortBoard commands: ``verify``, ``search`` and ``board`` (the rest are in commands.py)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from zeptogpt.commands import UserError, _check_writable, _executor, _recipe, _task


def cmd_verify(args: argparse.Namespace) -> int:
    """`zeptogpt verify CHECKPOINT`: one verdict line; exit 0 only when every input sorts."""
    from zeptogpt.checkpoint import CheckpointError
    from zeptogpt.verify import verify_file

    if args.checkpoint.is_dir():
        raise UserError(f"{args.checkpoint} is a folder, not a checkpoint file")
    try:
        verdict = verify_file(args.checkpoint)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    print(verdict.line())
    return 0 if verdict.passed else 1


def cmd_search(args: argparse.Namespace) -> int:
    """`zeptogpt search`: the grid (or the named architectures) over many seeds; the front."""
    from zeptogpt.checkpoint import RUNS_DIR
    from zeptogpt.config import config_from_name
    from zeptogpt.plan import SHARD_SIZE
    from zeptogpt.search import front, grid, run_search, table
    from zeptogpt.shards import shard_count
    from zeptogpt.sweep import result_name

    task = _task(args)
    recipe = _recipe(args)
    try:
        configs = ([config_from_name(name, task.vocab_size, task.seq_len) for name in args.arch]
                   if args.arch else grid(task, args.max_params))
    except ValueError as e:
        raise UserError(str(e)) from None
    # As in `zeptogpt sweep`: the shard plan only when a backend or a shard size asks for it
    if args.address is not None and args.backend != "ray":
        raise UserError("--address goes with --backend ray")
    planned = args.backend == "ray" or args.shard_size is not None
    shard_size = (args.shard_size or SHARD_SIZE) if planned else 0
    stem = result_name(task.file_name, args.seeds, 0, recipe)
    stem += f"-shards{shard_size}" if planned else ""
    out = args.out or RUNS_DIR / "search" / f"{stem}.jsonl"
    _check_writable(out)
    cores = args.threads or os.cpu_count() or 1
    shards = shard_count(args.seeds, cores)
    stack = contextlib.ExitStack()
    executor, cluster_cpus = _executor(args, stack, cores)
    print(f"{len(configs)} architectures × {args.seeds} seeds of {task.name}; results in {out}"
          + (f"; shards of {shard_size} seeds" if planned else ""))

    from tqdm import tqdm

    bar = tqdm(total=len(configs), desc="search", unit="arch", file=sys.stderr, leave=False,
               disable=None)  # None: only on a terminal

    def show(row) -> None:
        steps = "-" if row.median_steps is None else f"{row.median_steps:g}"
        bar.write(f"  {row.arch:36s} {row.params:5d} params  {row.solved:4d}/{row.seeds} "
                  f"solved  median {steps} steps  {row.wall_seconds:.1f} s", file=sys.stdout)
        bar.update(1)

    try:
        with stack, bar:
            rows = run_search(task, configs, args.seeds, recipe, out, shards, on_row=show,
                              shard_size=shard_size, executor=executor, backend=args.backend,
                              cluster_cpus=cluster_cpus)
    except ValueError as e:
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"\nPareto front of {len(rows)} architectures, {args.seeds} seeds each:")
    print(table(front(rows)))
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    """`zeptogpt board`: every entry verified, as a table; the front drawn with ``--out``."""
    from zeptogpt.board import rows, table

    if args.out is not None:
        _check_writable(args.out)
    entries = rows()
    print(table(entries))
    if args.out is not None:
        from zeptogpt.board import SEARCHES
        from zeptogpt.plots import plot_board, save_png
        from zeptogpt.search import read_searches

        save_png(plot_board(entries, read_searches(SEARCHES)), args.out)
        print(f"Saved {args.out}")
    return 0


def cmd_handcode(args: argparse.Namespace) -> int:
    """`zeptogpt handcode`: the hand-coded sorter of the task, saved and verified."""
    from zeptogpt.checkpoint import RUNS_DIR, Checkpoint, save
    from zeptogpt.handcoded import sorter
    from zeptogpt.verify import verify

    task = _task(args)
    path = args.checkpoint or RUNS_DIR / f"{task.file_name}-hand-coded" / "model.safetensors"
    _check_writable(path)
    try:
        model = sorter(task)
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        save(path, Checkpoint(model, task, {"category": "hand-coded"}))
    except OSError as e:
        raise UserError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
    print(verify(model, task).line())
    print(f"Saved {path}")
    return 0
