"""What each ``zeptogpt`` command does, given its parsed arguments: ``run(args)``.

The library is imported inside each command, so a command pays only for what it uses
(``params`` imports no torch). Anything the user can fix is raised as ``UserError``, which the
CLI prints as one line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path


class UserError(Exception):
    """Anything the user can fix; printed as one line, exit 2."""


def run(args: argparse.Namespace) -> int:
    """Run the command ``args.command`` names; its exit code.

    Usage: ``run(build_parser().parse_args(["sort", "caa"]))``
    """
    if args.command != "params":
        torch = _import_torch()
        # One model's tensors are far too small to split across threads; a second thread only
        # adds waiting (a single-seed run was 4x slower with two threads on a busy machine).
        torch.set_num_threads(1)
    return COMMANDS[args.command](args)


def _import_torch():
    """``import torch``, with a Ctrl-C during it held until it is done, then raised.

    A KeyboardInterrupt in the middle of torch's import is not always one: torch's C++ side
    has aborted the process, lost the Ctrl-C, or refused a second import. Held, it costs the
    rest of the import (about a second) and ends as "interrupted".
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only it gets signals
        import torch

        return torch
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        import torch
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt
    return torch


# --- the commands ---------------------------------------------------------------------------------

def cmd_params(args: argparse.Namespace) -> int:
    """`zeptogpt params`: the parameter table of an architecture."""
    _, config = _model_config(args)
    print(config.format_params())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """`zeptogpt train`: train one seed and save its checkpoint and log."""
    task, config = _model_config(args)
    from zeptogpt.model import ZeptoGPT

    print(ZeptoGPT(config))
    path = _checkpoint_path(args, task, config)
    checkpoint, log = _train(args, task, config, _recipe(args))
    print(str(_evaluation(checkpoint)).splitlines()[-1])
    _save(path, checkpoint, log)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`zeptogpt` / `zeptogpt run`: the main job: train, evaluate, trace, save, then sort."""
    from zeptogpt.evaluation import format_trace
    from zeptogpt.inputs import prompt
    from zeptogpt.model import ZeptoGPT

    task, config = _model_config(args)
    print(ZeptoGPT(config))
    print(f"Task: {task.title()}; sequence {_layout(task)}")
    print(config.format_params())
    path = _checkpoint_path(args, task, config)
    checkpoint, log = _train(args, task, config, _recipe(args))
    evaluation = _evaluation(checkpoint)
    print(f"Evaluation on {evaluation.scope} (greedy, <sep> forbidden after <sep>):")
    print(evaluation)
    for x in task.examples():
        print(format_trace(checkpoint.model, task, x))
    _save(path, checkpoint, log)
    if sys.stdin is not None and sys.stdin.isatty():
        prompt(checkpoint)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """`zeptogpt eval`: all inputs through the saved model, each marked right or wrong."""
    evaluation = _evaluation(_load_or_train(args))
    if not evaluation.exhaustive:
        print(f"Checked on {evaluation.scope}:")
    print(evaluation)
    return 0


def cmd_sort(args: argparse.Namespace) -> int:
    """`zeptogpt sort`: sort the given inputs with the saved model, stdin a batch at a time."""
    from zeptogpt.evaluation import answers, format_trace
    from zeptogpt.inputs import batches

    saved, task = _saved_and_task(args)
    inputs = batches(task, args.inputs)  # checked here, before any work
    checkpoint = saved or _train_first(args)
    model = checkpoint.model
    for words in inputs:
        unique = list(dict.fromkeys(words))  # 27 inputs exist: a long stdin repeats them
        answer_of = dict(zip(unique, answers(model, task, unique)))
        if args.trace:
            for word in words:
                print(format_trace(model, task, word))
                print(f"{word} -> {answer_of[word]}")
        else:
            sys.stdout.write("".join(f"{word} -> {answer_of[word]}\n" for word in words))
        sys.stdout.flush()  # a reader sees each batch as it is sorted
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """`zeptogpt trace`: the step-by-step trace of each input."""
    from zeptogpt.evaluation import format_trace
    from zeptogpt.inputs import batches

    saved, task = _saved_and_task(args)
    inputs = batches(task, args.inputs)  # checked here, before any work
    checkpoint = saved or _train_first(args)
    for words in inputs:
        for word in words:
            print(format_trace(checkpoint.model, checkpoint.task, word))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """`zeptogpt sweep`: many seeds at once; reliability figures printed and saved."""
    from zeptogpt.checkpoint import RUNS_DIR
    from zeptogpt.config import VARIANTS, variant_config
    from zeptogpt.files import write_atomic
    from zeptogpt.plan import SHARD_SIZE, PlanFileError, ShardPlan
    from zeptogpt.progress import ShardBar, SweepBar
    from zeptogpt.shards import shard_count
    from zeptogpt.sweep import (
        format_summary,
        result_name,
        run_planned_sweep,
        run_sweep,
        to_csv,
        to_json,
        variants_table,
    )
    names = list(VARIANTS) if args.all_variants else [args.variant]
    recipe = _recipe(args)
    task = _task(args)
    # The shard plan (zeptogpt.plan) when asked for by a backend or a shard size; otherwise the
    # default sweep: the seeds dealt round-robin into one shard a core, nothing to resume.
    planned = args.backend == "ray" or args.shard_size is not None
    if args.address is not None and args.backend != "ray":
        raise UserError("--address goes with --backend ray")
    shard_size = args.shard_size or SHARD_SIZE
    swept = "" if task.name == "abc3" else f"{task.file_name}-"
    swept += "variants" if args.all_variants else args.variant
    swept += f"-{args.layers}layers" if args.layers > 1 else ""
    stem = result_name(swept, args.seeds, args.first_seed, recipe)
    stem += f"-shards{shard_size}" if planned else ""
    json_path = args.json or RUNS_DIR / "sweep" / f"{stem}.json"
    csv_path = args.csv or RUNS_DIR / "sweep" / f"{stem}.csv"
    if args.first_seed + args.seeds - 1 > 2**63 - 1:
        raise UserError(f"seeds {args.first_seed}.. run past the last seed, 2**63-1")
    if json_path.resolve() == csv_path.resolve():
        raise UserError(f"--json and --csv name the same file, {json_path}")
    for path in (json_path, csv_path):  # refuse now, not after minutes of training
        _check_writable(path)
    cores = args.threads or os.cpu_count() or 1
    with contextlib.ExitStack() as stack:
        executor, cluster_cpus = _executor(args, stack, cores)
        sweeps = []
        for name in names:
            config = variant_config(name, task.vocab_size, task.seq_len, n_layer=args.layers)
            if not planned:
                with SweepBar(name, args.seeds) as progress:
                    sweeps.append(run_sweep(task, config, args.seeds, recipe, args.first_seed,
                                            on_step=progress,
                                            shards=shard_count(args.seeds, cores)))
            else:
                plan = ShardPlan(args.first_seed, args.seeds, shard_size)
                results = json_path.with_name(json_path.stem + (f"-{name}" if args.all_variants
                                                                else "") + ".jsonl")
                try:
                    with ShardBar(name, args.seeds, plan.shards) as progress:
                        sweeps.append(run_planned_sweep(
                            task, config, recipe, plan, results, executor, args.backend,
                            cluster_cpus, on_shard=progress))
                except PlanFileError as e:
                    raise UserError(str(e)) from None
                found = progress.found or 0
                print(f"Shard results in {results}: {plan.shards - found} of {plan.shards} "
                      f"shards trained now" + (f", {found} found done" if found else ""),
                      flush=True)
            print(format_summary(sweeps[-1].summary), flush=True)
    if args.all_variants:
        print(variants_table([s.summary for s in sweeps]))
    try:  # both files or neither
        write_atomic({json_path: to_json(sweeps).encode(), csv_path: to_csv(sweeps).encode()})
    except OSError as e:
        raise UserError(f"cannot write {json_path} and {csv_path}: {e.strerror or e}") from None
    print(f"Saved {json_path} and {csv_path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """`zeptogpt plot`: PNGs of attention, the logit lens, the weights or training curves."""
    from zeptogpt import plots

    try:
        import matplotlib  # noqa: F401 (checked here so its absence is one line, not a traceback)
    except ImportError:
        raise UserError("plotting needs matplotlib: pip install matplotlib") from None
    saved, task = _saved_and_task(args) if args.sweep is None else (None, _task(args))
    if args.what in ("attention", "lens"):
        if args.input is None:
            raise UserError(f"plot {args.what} needs an INPUT, e.g. zeptogpt plot {args.what} caa")
        word = task.parse(args.input)
    elif args.input is not None:
        raise UserError(f"plot {args.what} takes no INPUT (got {args.input[:40]!r})")
    if args.sweep is not None and args.what != "curves":
        raise UserError("--sweep goes with `plot curves`")
    out = args.out
    if args.what == "curves" and args.sweep is not None:
        sweeps = _read_sweeps(args.sweep)
        figures = {"solved-share" + (f"-{s.summary.variant}" if len(sweeps) > 1 else ""):
                   plots.plot_solved_share(s.steps, s.summary.step_limit,
                                           title=s.summary.variant)
                   for s in sweeps}
        out = out if out is not None else args.sweep.parent
    else:
        path = _checkpoint_path(args, task, _model_config(args, task)[1])
        name = f"{args.what}-{word}" if args.what in ("attention", "lens") else args.what
        if out is not None:  # refuse before any training, not after
            _check_writable(Path(out) / f"{name}.png")
        checkpoint = saved or _train_first(args)
        out = out if out is not None else path.parent
        if args.what == "attention":
            figure = plots.plot_attention(checkpoint.model, task, word)
        elif args.what == "lens":
            figure = plots.plot_lens(checkpoint.model, task, word)
        elif args.what == "weights":
            figure = plots.plot_weights(checkpoint.model, task)
        else:
            figure = plots.plot_curves(_read_log(path, checkpoint), task.n_inputs)
        figures = {name: figure}
    for name, fig in figures.items():
        try:
            print(plots.save_png(fig, Path(out) / f"{name}.png"))
        except OSError as e:
            raise UserError(f"cannot write {Path(out) / name}.png: {e.strerror or e}") from None
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`zeptogpt serve`: the local web page for a saved model."""
    from zeptogpt.serve import serve

    task, config = _model_config(args)
    path = _checkpoint_path(args, task, config)
    if not path.exists():
        how = " ".join(["zeptogpt train", *_task_flags(args), *_architecture_flags(args),
                        *([f"--checkpoint {path}"] * (args.checkpoint is not None))])
        raise UserError(f"no checkpoint at {path}: run `{how}` first")
    checkpoint = _load(args, path)
    try:
        serve(checkpoint, path, host=args.host, port=args.port)
    except OSError as e:
        where = f"[{args.host}]" if ":" in args.host else args.host
        raise UserError(f"cannot serve on {where}:{args.port}: {e.strerror or e}") from None
    return 0


def _command_in(module: str, name: str):
    """The command ``cmd_<name>`` of ``zeptogpt.<module>``, imported when it runs."""
    def command(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(f"zeptogpt.{module}"), f"cmd_{name}")(args)
    return command


COMMANDS = dict(run=cmd_run, train=cmd_train, eval=cmd_eval, sort=cmd_sort, trace=cmd_trace,
                params=cmd_params, sweep=cmd_sweep, plot=cmd_plot, serve=cmd_serve,
                **{name: _command_in("board_commands", name)
                   for name in ("verify", "search", "board", "handcode")},
                **{name: _command_in("study_commands", name) for name in ("explain", "export")})


# --- pieces the commands share ------------------------------------------------------------------

def _executor(args: argparse.Namespace, stack: contextlib.ExitStack, cores: int):
    """Where a shard plan's shards run, and the cluster's CPUs (0 here): forked processes on
    this machine, or Ray tasks with ``--backend ray`` (a local Ray, or the one at
    ``--address``, left when ``stack`` closes), saying which and how long joining took."""
    from zeptogpt.plan import local_executor

    if args.backend != "ray":
        return local_executor(cores), 0
    from zeptogpt.ray_backend import RayError, connect, ray_executor

    try:
        info = stack.enter_context(connect(args.address, cores))
    except RayError as e:
        raise UserError(str(e)) from None
    print(f"Ray: joined {args.address}" if args.address else "Ray: started a local Ray",
          f"({info.nodes} node{'s' * (info.nodes != 1)}, {info.cpus} CPUs) in "
          f"{info.start_seconds:.1f} s", flush=True)
    return ray_executor(), info.cpus


def _task(args: argparse.Namespace):
    """The task the flags ask for: a named one (default ``abc3``, the seed's), changed by
    ``--alphabet``, ``--length``, ``--min-length`` and ``--reverse``."""

    from zeptogpt.task import TASKS

    base = TASKS[args.task or "abc3"]
    changes = dict(alphabet=args.alphabet, length=args.length, reverse=args.reverse,
                   min_length=args.min_length)
    if args.min_length is None and args.length is not None and not base.varies:
        changes["min_length"] = 0  # one length stays one length: the new one
    try:
        return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})
    except ValueError as e:
        raise UserError(str(e)) from None


def _task_flags(args: argparse.Namespace) -> list[str]:
    """The task options given on the command line, as they were typed."""
    given = (("task", args.task), ("alphabet", args.alphabet), ("length", args.length),
             ("min-length", args.min_length))
    flags = [f"--{name} {value}" for name, value in given if value is not None]
    return flags + (["--reverse"] if args.reverse else [])


def _model_config(args: argparse.Namespace, task=None):
    """The task (the flags', unless given) and the architecture the flags ask for, sized for it."""
    from zeptogpt.config import config_from_name, variant_config

    task = _task(args) if task is None else task
    flags = dict(n_embd=args.embed, n_head=args.heads, mlp_mult=args.mlp, pos_embed=args.pos,
                 n_layer=args.layers, head_dim=args.head_dim, mlp_width=args.mlp_width,
                 norm=args.norm, tie_qk=args.tie_qk, tie_vo=args.tie_vo,
                 tie_unembed=False if args.untied_unembed else None)
    if args.positions is not None:
        if args.pos is not None and args.pos != (args.positions == "learned"):
            raise UserError(f"--positions {args.positions} contradicts "
                            f"--{'' if args.pos else 'no-'}pos")
        flags |= dict(pos_embed=args.positions == "learned",
                      sinusoidal=args.positions == "sinusoidal")
    overrides = {k: v for k, v in flags.items() if v is not None}
    try:
        if args.arch:
            if args.variant:
                raise UserError("--arch and --variant both name an architecture: give one")
            named = config_from_name(args.arch, task.vocab_size, task.seq_len)
            return task, dataclasses.replace(named, **overrides)
        return task, variant_config(args.variant or "e6", task.vocab_size, task.seq_len,
                                    **overrides)
    except ValueError as e:
        raise UserError(str(e)) from None


def _architecture_flags(args: argparse.Namespace) -> list[str]:
    """The architecture options given on the command line, as they were typed."""
    flags = [f"--variant {args.variant}"] if args.variant else []
    flags += [f"--arch {args.arch}"] if args.arch else []
    flags += [f"--{name} {value}" for name, value in
              (("embed", args.embed), ("heads", args.heads), ("mlp", args.mlp),
               ("layers", args.layers), ("head-dim", args.head_dim),
               ("mlp-width", args.mlp_width), ("norm", args.norm),
               ("positions", args.positions)) if value is not None]
    flags += [f"--{name}" for name, on in (("tie-qk", args.tie_qk), ("tie-vo", args.tie_vo),
                                           ("untied-unembed", args.untied_unembed)) if on]
    return flags + ([] if args.pos is None else ["--pos" if args.pos else "--no-pos"])


def _checkpoint_path(args: argparse.Namespace, task, config) -> Path:
    from zeptogpt.checkpoint import default_path

    return args.checkpoint if args.checkpoint is not None else default_path(config, task)


def _recipe(args: argparse.Namespace):
    """The training recipe: the defaults, changed by whichever training flags were given."""
    from zeptogpt.training import Recipe

    flags = dict(max_steps=args.steps, objective=args.objective, lr=args.lr,
                 batch_size=args.batch_size, decay=args.decay)
    return Recipe(**{k: v for k, v in flags.items() if v is not None})


def _train(args: argparse.Namespace, task, config, recipe):
    """Train one seed with a live step/loss line: (checkpoint, per-step log), not saved yet."""
    from dataclasses import asdict

    from zeptogpt.checkpoint import Checkpoint
    from zeptogpt.progress import TrainingLine
    from zeptogpt.runlog import log_path
    from zeptogpt.training import DRAWN_BATCH, FULL_BATCH_LIMIT, train

    path = _checkpoint_path(args, task, config)
    for output in (path, log_path(path)):  # refuse before training, not after
        _check_writable(output)
    drawn = task.n_inputs > FULL_BATCH_LIMIT
    batch = recipe.batch_size or (DRAWN_BATCH if drawn else task.n_inputs)
    data = (f"{batch} drawn sequences" if drawn else f"{batch} sampled sequences"
            if recipe.batch_size else f"all {task.n_inputs} sequences")
    print(f"Training seed {args.seed}: {data} per step, Adam lr {recipe.lr:g}, "
          f"loss on {'the answer only' if recipe.objective == 'answer' else 'every next token'}, "
          f"up to {recipe.max_steps} steps")
    progress = TrainingLine(batch if drawn else task.n_inputs)
    result = train(task, config, recipe, seeds=[args.seed], on_step=progress)
    r = result.results[0]
    progress.finish(r, result.checked_on)
    if not all(bool(w.isfinite().all()) for w in result.weights.values()):
        raise UserError(f"training diverged (loss {r.loss:g}) with lr {recipe.lr:g}; nothing "
                        "was saved: try a smaller --lr")
    facts = dict(seed=r.seed, steps=r.steps, solved=r.solved, correct=r.correct,
                 total=result.checked_on, margin=round(r.margin, 6), loss=round(r.loss, 6),
                 seconds=round(r.seconds, 3), recipe=asdict(recipe))
    return Checkpoint(result.models[0], task, facts), r.log


def _save(path: Path, checkpoint, log) -> None:
    """The checkpoint and, beside it, its training log: both or neither."""
    from zeptogpt.checkpoint import save
    from zeptogpt.runlog import log_path

    try:
        save(path, checkpoint, log)
    except OSError as e:
        raise UserError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None
    print(f"Saved {path} and its training log {log_path(path).name}")


def _check_writable(path: Path) -> None:
    from zeptogpt.files import check_writable

    try:
        check_writable(path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def _read_log(checkpoint_path: Path, checkpoint):
    """The training log of the checkpoint file, refused unless it was saved with its weights."""
    from zeptogpt.checkpoint import load_log
    from zeptogpt.runlog import LogError

    try:
        return load_log(checkpoint_path, checkpoint)
    except LogError as e:
        raise UserError(str(e)) from None


def _read_sweeps(path: Path):
    from zeptogpt.sweep import SweepFileError, read_sweeps

    try:
        return read_sweeps(path)
    except SweepFileError as e:
        raise UserError(str(e)) from None


def _load_or_train(args: argparse.Namespace):
    """The saved checkpoint; with no --checkpoint and none saved yet, train one first, saying so."""
    return _saved(args) or _train_first(args)


def _saved_and_task(args: argparse.Namespace):
    """The saved checkpoint (None where one is still to be trained) and the task inputs are read
    for: the checkpoint's, or else the flags'."""
    saved = _saved(args)
    return saved, saved.task if saved is not None else _task(args)


def _train_first(args: argparse.Namespace):
    """Train and save the checkpoint the flags ask for, which is not saved yet, saying so."""
    from contextlib import redirect_stdout

    from zeptogpt.training import Recipe

    task, config = _model_config(args)
    path = _checkpoint_path(args, task, config)
    print(f"No checkpoint at {path} yet: training one first.", file=sys.stderr)
    with redirect_stdout(sys.stderr):  # stdout stays for the answers alone
        checkpoint, log = _train(args, task, config, Recipe())
        _save(path, checkpoint, log)
    return checkpoint


def _saved(args: argparse.Namespace):
    """The checkpoint the flags name (``--checkpoint``, or the default path of their task and
    architecture), checked against the flags; None if there is none at the default path yet."""
    task, config = _model_config(args)
    path = _checkpoint_path(args, task, config)
    if args.checkpoint is None and not path.exists():
        return None
    return _load(args, path)


def _load(args: argparse.Namespace, path: Path):
    """The checkpoint at ``path``, refused unless the task and architecture flags given, if
    any, describe it. Without task flags its task is taken as it is."""
    from zeptogpt.checkpoint import CheckpointError, load
    from zeptogpt.config import variant_name

    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file")
    try:
        checkpoint = load(path)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    task = _task(args)
    flags = " ".join(_task_flags(args))
    if flags and checkpoint.task != task:
        raise UserError(f"{path} was trained for {checkpoint.task.name} "
                        f"({checkpoint.task.title()}), not the {task.name} asked for by {flags}")
    _, config = _model_config(args, checkpoint.task)
    flags = " ".join(_architecture_flags(args))
    if flags and checkpoint.model.config != config:
        raise UserError(f"{path} holds {variant_name(checkpoint.model.config)}, not the "
                        f"{variant_name(config)} asked for by {flags}")
    return checkpoint


def _evaluation(checkpoint):
    from zeptogpt.evaluation import evaluate

    return evaluate(checkpoint.model, checkpoint.task)


def _layout(task) -> str:
    """The sequence's layout for the run's heading: ``[x1, x2, x3, <sep>, y1, y2, y3]``."""
    n = task.length
    tokens = [f"x{i + 1}" for i in range(n)] + ["<sep>"] + [f"y{i + 1}" for i in range(n)]
    return f"[{', '.join(tokens)}]" + (f", n from {task.min_length}" if task.varies else "")
